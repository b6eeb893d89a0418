"""Tasks: each fills one :class:`~mridiff.tasks.problem.InverseProblem` for training and inference alike."""
