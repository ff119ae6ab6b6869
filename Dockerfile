# recon in a container: the agent with Debian's monitoring-plugins.
#   docker build -t recon .
#   docker run -p 43919:43919 -v recon-data:/var/lib/recon recon
# (Mount your configuration over /etc/recon/recon.toml.)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags grpcnotrace,gosnmp_nodebug -trimpath -ldflags "-s -w" -o /out/recon ./cmd/recon

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends monitoring-plugins-basic monitoring-plugins-standard ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/recon --create-home recon
COPY --from=build /out/recon /usr/local/bin/recon
COPY configs/recon.toml /etc/recon/recon.toml
# The example config listens on loopback; in a container, publish the API
# by setting agent.listen = "0.0.0.0:43919" and agent.token in your config.
USER recon
WORKDIR /var/lib/recon
VOLUME /var/lib/recon
EXPOSE 43919 5666 162/udp
ENTRYPOINT ["/usr/local/bin/recon"]
CMD ["agent", "-c", "/etc/recon/recon.toml", "--log-format", "json"]
