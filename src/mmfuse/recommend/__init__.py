"""Recommendation from behaviour, item content and social links (SPEC §10.3).

- ``tables``: the interactions, item, user and social tables, checked and mapped to indices;
- ``graph``: who interacted with what and who knows whom, as sparse matrices;
- ``model``: the two towers (user: history, friends, attributes; item: id and fused content);
- ``training``: sampled-softmax training with in-batch negatives;
- ``ranking``: top-K lists for users, excluding what they already have.

The estimator is ``mmfuse.estimators.recommender.MultimodalRecommender``.
"""
