# Container images and the Docker engine (docs/cluster.md, "Images").
# Included by the top-level Makefile. Targets with `## text` show in `make help`.
#
# scripts/build_images.py builds base, TFDV and MinIO with the tags of
# scripts/images.py, and skips an image whose inputs (Dockerfile, copied files,
# build arguments, bases) are unchanged. Bases: the public ones of the Dockerfiles
# when present or pullable, else local ones made from Debian packages
# (scripts/base-image.sh; made once, then reused). IMAGE_BASES=public|local forces one.

IMAGES_PYTHON ?= python3
IMAGE_BASES ?= auto

.PHONY: images images-check images-clean base-images engine-up engine-down

images: ## Build the base, TFDV and MinIO images (tags from scripts/images.py); unchanged ones are skipped
	IMAGE_BASES=$(IMAGE_BASES) $(IMAGES_PYTHON) scripts/build_images.py

images-check: ## Exit 1 if an image is missing or older than its inputs (builds nothing)
	IMAGE_BASES=$(IMAGE_BASES) $(IMAGES_PYTHON) scripts/build_images.py --check

base-images: ## Make the local Debian 12 base images (debootstrap + docker import), if missing
	scripts/base-image.sh debian
	scripts/base-image.sh python
	scripts/base-image.sh golang

engine-up: ## Use the running Docker engine, else start dockerd (pid and log in /tmp/kfp-mlops-docker)
	scripts/docker-engine.sh up

engine-down: ## Stop the dockerd that engine-up started (never another engine)
	scripts/docker-engine.sh down

images-clean: ## Remove the images, the local base images and the layer cache built on them (nothing else)
	$(IMAGES_PYTHON) scripts/build_images.py --clean
