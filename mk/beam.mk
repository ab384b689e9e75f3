# TFDV's Beam pipeline on a local Spark cluster, through Beam's portable runner (docs/beam.md).
# Included by the top-level Makefile (it uses its VENV and setup).
#
# scripts/beam/cluster.py fetches Spark (PyPI's pyspark) and the job server's classpath (Maven
# Central) at setup into a cache keyed by scripts/beam/{spark.lock,pom.xml}; beam-cluster-up only
# starts processes from it, never downloads.

.PHONY: beam-runtime beam-cluster-up beam-cluster-down beam-cluster-status

beam-runtime: setup ## Fetch (or find cached) Spark and Beam's Spark job server jars, ~/.cache/kfp-mlops/beam (needs java, mvn)
	$(VENV)/bin/python scripts/beam/cluster.py fetch

beam-cluster-up: beam-runtime ## Start a local Spark master, 2 workers, Beam's job server and a Python worker pool (127.0.0.1; state in .beam)
	$(VENV)/bin/python scripts/beam/cluster.py up

beam-cluster-down: ## Stop the processes of beam-cluster-up
	$(VENV)/bin/python scripts/beam/cluster.py down

beam-cluster-status: ## Which processes of beam-cluster-up are running
	$(VENV)/bin/python scripts/beam/cluster.py status
