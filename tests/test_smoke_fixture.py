def test_tiny_model_learns_the_synthetic_classes(tiny_model, tiny_val):
    images, labels = tiny_val
    probs = tiny_model.keras_model.predict(images.astype("float32"), verbose=0)
    assert (probs.argmax(1) == labels).mean() >= 0.9
