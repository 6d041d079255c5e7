# Deployment artefacts. Included from Makefile, which provides `build` and WASM.

OCI_OUT ?= target/oci

.PHONY: oci

# The Istio WasmPlugin image of the freshly built filter, as an OCI image
# layout and an oci-archive tar under $(OCI_OUT); prints how to push it.
# No container engine needed.
oci: build
	scripts/oci.sh --wasm $(WASM) --out $(OCI_OUT)
