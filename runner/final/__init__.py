"""What the final step serves, chosen from the finished trials.

``candidates`` picks the best trial, the ensemble ``ensemble`` selects or the stacker
``stacking`` fits, from the trials' out-of-fold predictions; ``bagging`` decides whether it is
refit or served as its fold models averaged; ``clock`` times the final step's parts and caps
the optional ones.
"""
