# Container images for the compose recipe and the container tests, built from
# what this machine already has (no registry). Included from Makefile, which
# provides `cli`, `native` and NATIVE; Makefile.envoy.mk provides `envoy` and VENV.

IMAGES_OUT ?= target/images

.PHONY: images

# Tags by content: an unchanged image is not rebuilt, and nothing is fetched.
# Without a container engine: an error under CI=true, else a loud notice
# (the container tests then say what they did not run).
images: cli envoy native
	@if docker info >/dev/null 2>&1; then \
		images/build.sh --envoy "$$(echo $(VENV)/lib/python3*/site-packages/envoy/_bin/envoy)" \
			--native $(NATIVE) --cli target/release/mesh-audit --out $(IMAGES_OUT); \
	elif [ "$$CI" = true ]; then \
		echo "make images: no container engine answers (docker info failed); CI needs one" >&2; exit 1; \
	else \
		echo "*** make images: NO CONTAINER ENGINE: images not built, the container tests will not run ***" >&2; \
	fi

# The container suite (tests/containers) runs the images.
test: images
