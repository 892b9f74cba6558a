"""Tuning on equal terms: the same number of trials and epochs for every rule, chosen on a
validation split carved from the training set, with Optuna (TPE sampler, median pruner).

`spaces` (what may vary; imported by `llsbench.method`, so it never imports Optuna),
`validation` (the trainer that scores on the validation split), `objective` (one trial),
`study` (a rule's Optuna study, resumable), `parallel` (trials on Ray), `output` (the tuned
YAML fragment and its report table).
"""
