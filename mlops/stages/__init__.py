"""Pipeline stages as plain logic (no kfp): what each task of a run does."""
