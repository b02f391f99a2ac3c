"""The training engine behind `actiondistill.train`: one module per concern (optimiser, checkpoints, distributed
setup, objectives, teachers, seeding, results records), so later chapters extend one piece without the rest."""
