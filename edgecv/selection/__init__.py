"""`edgecv select`: pick a backbone for a target's latency budget.

Each candidate backbone's pooled features of the training and validation images are extracted once
and cached; a logistic-regression head on them estimates the accuracy a fine-tune would start
from (a linear probe); the candidate with that head is exported as the target's int8 artifact and
timed with the target's runtime settings beside the recipe's own backbone. The accuracy-latency
Pareto front and the most accurate candidate under the budget are printed, plotted and written to
select.json, with a target file that distils the recipe's model into the pick.
"""
