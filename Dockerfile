# blobswarm as a FROM scratch image: one static binary, nothing else.
#
# With network access (BuildKit, Docker 23+), build everything here:
#   docker build -t blobswarm .
# Where no base image can be pulled, build the static binary first and take
# the first stage only; the legacy builder stops at the target, so the
# golang stage below is never pulled:
#   make image   # CGO_ENABLED=0 go build -o bin/ ./cmd/... && docker build --target prebuilt .

FROM scratch AS prebuilt
COPY bin/blobswarm /blobswarm
# mirrorctl, for the Kubernetes init container that writes hosts.toml.
COPY bin/mirrorctl /mirrorctl
# Non-root; the mirror needs root only to bind ports below 1024.
USER 65532:65532
ENTRYPOINT ["/blobswarm"]

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/blobswarm ./cmd/blobswarm
RUN CGO_ENABLED=0 go build -trimpath -o /out/mirrorctl ./cmd/mirrorctl

FROM scratch AS image
COPY --from=build /out/blobswarm /blobswarm
COPY --from=build /out/mirrorctl /mirrorctl
USER 65532:65532
ENTRYPOINT ["/blobswarm"]
