"""Ways to run the pipeline on this machine: kfp.local, Docker, the warm task server, a dev MinIO."""
