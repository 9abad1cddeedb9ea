"""A third-party segmenter (Google's int8 DeepLab v3 MobileNetV2, PASCAL VOC classes) through edgecv's
TFLite runtime, its class map decoded and scored with the segmentation reader and metrics on CamVid."""

from __future__ import annotations

import numpy as np

from conftest import shared_path

PASCAL_BUS, PASCAL_CAR, PASCAL_PERSON = 6, 7, 15
CAMVID_CAR, CAMVID_PEDESTRIAN, CAMVID_BICYCLIST = 8, 9, 10


def test_deeplab_class_map_scores_camvid_cars():
    from edgecv.data.images import load_batch
    from edgecv.data.segmentation import read_segmentation
    from edgecv.metrics.segmentation import AgreementAccumulator, ConfusionAccumulator, resize_class_map
    from edgecv.formats.tflite.runtime import TFLiteRuntime

    model = shared_path("models", "deeplabv3_mnv2_pascal_quant.tflite")
    ds = read_segmentation(shared_path("datasets", "camvid", "val", "images"),
                           shared_path("datasets", "camvid", "val", "labels"),
                           shared_path("datasets", "camvid", "classes.txt"))
    labels = [ds.load_label(s) for s in ds.samples]
    busiest = np.argsort([-(lab == CAMVID_CAR).sum() for lab in labels], kind="stable")[:3]  # the most car pixels

    runtime = TFLiteRuntime(model, threads=2)
    assert runtime.input_size == (513, 513) and runtime.input_dtype == "uint8"
    images = load_batch([ds.samples[i].path for i in busiest], runtime.input_size, "resize")
    out = runtime.predict(images)
    assert list(out) == ["ArgMax"]  # a class map (argmax inside the model), not per-class scores
    class_map = out["ArgMax"]
    assert class_map.shape == (3, 513, 513) and np.issubdtype(class_map.dtype, np.integer)
    assert class_map.min() >= 0 and class_map.max() <= 20  # PASCAL VOC: background + 20 classes

    # the two label sets share "car" and "person": score those, everything else is "other"
    label_lut = np.zeros(256, np.uint8)
    label_lut[CAMVID_CAR], label_lut[CAMVID_PEDESTRIAN] = 1, 2
    label_lut[[CAMVID_BICYCLIST, 255]] = 255  # a rider is a PASCAL person on a bicycle: not scored
    pred_lut = np.zeros(21, np.uint8)
    pred_lut[[PASCAL_BUS, PASCAL_CAR]], pred_lut[PASCAL_PERSON] = 1, 2
    acc = ConfusionAccumulator(["other", "car", "person"])
    mirrored = AgreementAccumulator(["other", "car", "person"])
    mirror_map = runtime.predict(images[:, :, ::-1].copy())["ArgMax"][:, :, ::-1]  # mirrored back
    for j, i in enumerate(busiest):
        pred = resize_class_map(class_map[j], labels[i].shape)  # 513x513 back to the 480x360 photo
        assert pred.shape == (360, 480)
        acc.add(label_lut[labels[i]], pred_lut[pred])
        mirrored.add(pred_lut[class_map[j]], pred_lut[mirror_map[j]])
    m = acc.metrics()
    # measured 0.90 on these images; a map decoded transposed or misaligned scores ~0
    assert m.per_class_iou["car"] > 0.7, m
    assert m.pixel_accuracy > 0.9 and m.num_images == 3
    # agreement, as float versus artifact would be measured: the model on the mirrored photos
    agreement = mirrored.result()
    assert 0.9 < agreement.pixel_agreement < 1.0 and 0.5 < agreement.miou < 1.0
