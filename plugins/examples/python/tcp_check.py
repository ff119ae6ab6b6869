#!/usr/bin/python3
"""tcp_check: an example recon check plugin in Python.

It connects to a TCP port of the check's target and reports the connect
time against warning/critical limits. It exists to show that the recon
plugin protocol is language-neutral: it speaks hashicorp/go-plugin's gRPC
protocol with nothing but Debian's python3-grpcio, python3-protobuf and
python3-cryptography (for AutoMTLS), and the stubs in gen/ generated from
plugins/proto by `make proto`.

    [[check]]
    name   = "ssh"
    type   = "plugin"
    target = "db1.example.net"
    path   = "/usr/local/lib/recon/plugins/tcp_check.py"
    sha256 = "..."      # of this file: it is what recon executes
    config = { port = 22, warning_ms = 200, critical_ms = 1000 }

What a go-plugin plugin must do, all of which is below:
  1. refuse to run unless the magic cookie variable is set;
  2. pick a protocol version from PLUGIN_PROTOCOL_VERSIONS;
  3. with AutoMTLS (PLUGIN_CLIENT_CERT set): make a one-time certificate,
     serve TLS requiring the host's certificate, and send ours back;
  4. serve grpc.health.v1.Health ("plugin" SERVING), the plugin's service,
     and plugin.GRPCController/Shutdown so the host can stop it gracefully;
  5. print "1|<version>|unix|<socket>|grpc|<cert>" on stdout;
  6. log to stderr as JSON lines with @level/@message (hclog's format).
"""

import base64
import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

# The generated stubs live next to this file; do not litter the install
# directory with bytecode caches.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "gen"))

import grpc  # noqa: E402

import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import plugin_pb2 as pb  # noqa: E402
import plugin_pb2_grpc as pb_grpc  # noqa: E402

MAGIC_COOKIE_KEY = "RECON_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "2f0c8a4e6d1b4f3a9c7e5b1d0a8f6e4c-recon-plugin"
PROTOCOL_VERSION = 1

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "warning_ms": {"type": "number", "exclusiveMinimum": 0},
        "critical_ms": {"type": "number", "exclusiveMinimum": 0},
    },
}


def log(level, message, **fields):
    """One hclog-style JSON line on stderr; recon logs it at that level."""
    entry = {"@level": level, "@message": message,
             "@timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")}
    entry.update(fields)
    sys.stderr.write(json.dumps(entry) + "\n")
    sys.stderr.flush()


def result(status, output, metrics=()):
    return pb.Result(status=status, output=output, metrics=list(metrics))


class TCPCheck(pb_grpc.CheckServicer):
    def __init__(self):
        self.configs = {}
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)

    def Info(self, request, context):
        return pb.InfoResponse(name="tcp_check", version="1.0.0", kind=pb.KIND_CHECK,
                               protocol_version=PROTOCOL_VERSION, sdk="python (hand-written)",
                               description="connect to a TCP port of the target")

    def ConfigSchema(self, request, context):
        return pb.ConfigSchemaResponse(json_schema=json.dumps(SCHEMA))

    def Configure(self, request, context):
        try:
            cfg = json.loads(request.config_json or b"{}")
        except ValueError as e:
            return pb.ConfigureResponse(error="config is not JSON: %s" % e)
        warn, crit = cfg.get("warning_ms"), cfg.get("critical_ms")
        if warn is not None and crit is not None and warn > crit:
            return pb.ConfigureResponse(error="warning_ms must not exceed critical_ms")
        with self.lock:
            self.configs[request.handle] = cfg
        return pb.ConfigureResponse()

    def Release(self, request, context):
        with self.lock:
            for h in request.handles:
                self.configs.pop(h, None)
        return pb.ReleaseResponse()

    def _config(self, handle, context):
        with self.lock:
            cfg = self.configs.get(handle)
        if cfg is None:
            # NOT_FOUND makes the host send the config again.
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown config handle %r" % handle)
        return cfg

    def _run(self, cfg, req, timeout_ms):
        if not req.target:
            return result(pb.STATUS_UNKNOWN, "no target: set the check's target to the host to connect to")
        port = cfg["port"]
        timeout = timeout_ms / 1000.0 if timeout_ms > 0 else 10.0
        start = time.monotonic()
        try:
            with socket.create_connection((req.target, port), timeout=timeout):
                pass
        except OSError as e:
            return result(pb.STATUS_CRITICAL, "%s:%d: %s" % (req.target, port, e.strerror or e))
        ms = (time.monotonic() - start) * 1000.0
        metric = pb.Metric(name="connect_time", float_value=ms, unit="ms",
                           warn=str(cfg.get("warning_ms", "")), crit=str(cfg.get("critical_ms", "")))
        status, what = pb.STATUS_OK, "open"
        if cfg.get("critical_ms") is not None and ms > cfg["critical_ms"]:
            status, what = pb.STATUS_CRITICAL, "slow"
        elif cfg.get("warning_ms") is not None and ms > cfg["warning_ms"]:
            status, what = pb.STATUS_WARNING, "slow"
        return result(status, "%s:%d %s in %.1f ms" % (req.target, port, what, ms), [metric])

    def Run(self, request, context):
        cfg = self._config(request.handle, context)
        return pb.RunResponse(result=self._run(cfg, request, request.timeout_ms))

    def RunMany(self, request, context):
        cfgs = [self._config(r.handle, context) for r in request.requests]
        futures = [self.pool.submit(self._run, cfg, r, request.timeout_ms)
                   for cfg, r in zip(cfgs, request.requests)]
        return pb.RunManyResponse(results=[f.result() for f in futures])


class Health(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def go_plugin_handlers(stop, stopping):
    """go-plugin's own services: GRPCController/Shutdown, which the host
    calls to stop the plugin gracefully, and GRPCStdio/StreamStdio, which
    forwards a Go plugin's stdout/stderr (this plugin logs to its real
    stderr, so the stream stays empty until shutdown). Shutdown's messages
    are empty, so neither needs generated code."""
    def shutdown(request, context):
        threading.Thread(target=stop, daemon=True).start()
        return b""

    def stream_stdio(request, context):
        stopping.wait()
        return iter(())

    raw = dict(request_deserializer=lambda b: b, response_serializer=lambda r: r)
    return (
        grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": grpc.unary_unary_rpc_method_handler(shutdown, **raw)}),
        grpc.method_handlers_generic_handler("plugin.GRPCStdio", {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(stream_stdio, **raw)}),
    )


def auto_mtls(client_cert_pem):
    """Make a one-time server certificate (what go-plugin does for Go
    plugins) and TLS credentials that accept only the host's certificate.
    Returns the credentials and our certificate as go-plugin wants it in
    the handshake: base64 of the DER, without padding."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "recon plugin"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False, key_agreement=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert_pem.encode(),
                                        require_client_auth=True)
    der = cert.public_bytes(serialization.Encoding.DER)
    return creds, base64.b64encode(der).decode().rstrip("=")


def main():
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write("This is a recon plugin: recon starts it (type = \"plugin\"); it is not meant to be run by hand.\n")
        return 1
    offered = [v.strip() for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v.strip()]
    if str(PROTOCOL_VERSION) not in offered:
        sys.stderr.write("recon offers plugin protocol versions %s; this plugin speaks %d\n"
                         % (",".join(offered) or "none", PROTOCOL_VERSION))
        return 1
    # The host stops plugins itself; a Ctrl-C meant for it must not.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # recon passes a private directory for the socket (go-plugin's
    # PLUGIN_UNIX_SOCKET_DIR); without one, make our own.
    sockdir = tempfile.mkdtemp(prefix="tcp_check-", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    sockpath = os.path.join(sockdir, "plugin.sock")
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
    done, stopping = threading.Event(), threading.Event()

    def stop():
        stopping.set()
        server.stop(grace=0.5).wait()
        done.set()

    pb_grpc.add_CheckServicer_to_server(TCPCheck(), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    server.add_generic_rpc_handlers(go_plugin_handlers(stop, stopping))

    cert = ""
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    if client_cert:
        creds, cert = auto_mtls(client_cert)
        server.add_secure_port("unix:" + sockpath, creds)
    else:
        server.add_insecure_port("unix:" + sockpath)
    server.start()
    log("info", "tcp_check serving", socket=sockpath, auto_mtls=bool(client_cert))
    sys.stdout.write("1|%d|unix|%s|grpc|%s\n" % (PROTOCOL_VERSION, sockpath, cert))
    sys.stdout.flush()
    try:
        done.wait()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
