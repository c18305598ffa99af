"""A fake Google Cloud Storage on this machine, for `gs://` paths in tests.

Three clients reach a bucket, and all are faked over one local folder
(`<root>/<bucket>/<object name>`), so what one writes the others read:

- `etils.epath` (and through it orbax's metadata files, TFDS and this
  project's own files) reaches `gs://` through fsspec's "gcs" protocol;
  `FakeGCSFileSystem` is registered under it.
- TensorStore (orbax's array bytes) has its own GCS driver, and ArrayRecord
  (TFDS's record files) reads through google-cloud-cpp; both speak the GCS
  JSON API over HTTP. `FakeGCSServer` serves the part of it they use (media
  reads with ranges and generation conditions, metadata reads, media uploads
  with `ifGenerationMatch`, deletes, listings) on 127.0.0.1, and
  `TENSORSTORE_GCS_HTTP_URL` / `CLOUD_STORAGE_EMULATOR_ENDPOINT` point them at it.

    with fake_gcs.fake_gcs(tmp_path) as server:
      ckpt = checkpoints.Checkpointer("gs://bucket/run/checkpoints")
      ...                 # files appear under tmp_path/bucket/run/...
      server.clients      # the User-Agent of each HTTP request

Not faked: GCS's object semantics on the fsspec side (folders exist there,
renames are local renames), resumable uploads, authentication (a fixed token).
"""

import contextlib
import http.server
import importlib
import json
import os
import re
import threading
import types
import urllib.parse

import sys

import fsspec
from fsspec.implementations.local import LocalFileSystem

_REGISTRY = sys.modules["fsspec.registry"]._registry  # pylint: disable=protected-access

# TensorStore's GCS driver, its test token, and google-cloud-cpp (ArrayRecord's GCS reader).
_ENV = ("TENSORSTORE_GCS_HTTP_URL", "GOOGLE_AUTH_TOKEN_FOR_TESTING", "CLOUD_STORAGE_EMULATOR_ENDPOINT")
_LOCK = threading.Lock()  # Conditional writes compare and write as one step.


class FakeGCSFileSystem(LocalFileSystem):
  """fsspec's local file system with `gs://<bucket>/<name>` mapped to `<root>/<bucket>/<name>`."""

  protocol = ("gcs", "gs")
  root = None  # Set by `fake_gcs`.

  def __init__(self, **kwargs):
    # GCS has no folders to create before an object: writing makes its parents.
    super().__init__(**{**kwargs, "auto_mkdir": True})

  @classmethod
  def _strip_protocol(cls, path):
    path = fsspec.utils.stringify_path(path)
    if isinstance(path, (list, tuple)):
      return [cls._strip_protocol(p) for p in path]
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        return os.path.join(cls.root, path[len(prefix):]).rstrip("/") or "/"
    return super()._strip_protocol(path)

  def unstrip_protocol(self, name):
    return "gs://" + os.path.relpath(name, self.root)

  def glob(self, path, **kwargs):
    # epath prefixes "gs://" itself: give names as GCS does, without it.
    return [os.path.relpath(p, self.root) for p in super().glob(path, **kwargs)]


def _object_path(root: str, bucket: str, name: str) -> str:
  path = os.path.normpath(os.path.join(root, bucket, name))
  if not path.startswith(os.path.join(root, bucket)):
    raise ValueError(f"object name {name!r} leaves the bucket")
  return path


def _generation(path: str) -> int:
  return os.stat(path).st_mtime_ns


class _Handler(http.server.BaseHTTPRequestHandler):
  """The GCS JSON API calls TensorStore's `gcs` kvstore makes."""

  protocol_version = "HTTP/1.1"
  root = None
  clients = None  # The User-Agent of every request: which libraries came over HTTP.

  def log_message(self, *args):  # Quiet: tests print only on failure.
    pass

  def parse_request(self):
    ok = super().parse_request()
    if ok:
      self.clients.append(self.headers.get("User-Agent", ""))
    return ok

  def _reply(self, status: int, body: bytes = b"", headers=None):
    self.send_response(status)
    for key, value in (headers or {}).items():
      self.send_header(key, str(value))
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def _json(self, status: int, value):
    self._reply(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

  def _parse(self):
    url = urllib.parse.urlsplit(self.path)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
    return url.path, query

  def _metadata(self, bucket: str, name: str, path: str) -> dict:
    generation = _generation(path)
    return {"kind": "storage#object", "bucket": bucket, "name": name,
            "size": str(os.path.getsize(path)), "generation": str(generation),
            "metageneration": "1"}

  def _precondition_failed(self, path: str, query: dict) -> bool:
    """Whether `ifGenerationMatch` / `ifGenerationNotMatch` exclude the object's generation."""
    exists = os.path.isfile(path)
    generation = _generation(path) if exists else 0
    if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != generation:
      return True
    return False

  def do_GET(self):  # pylint: disable=invalid-name
    path, query = self._parse()
    listing = re.fullmatch(r"/storage/v1/b/([^/]+)/o", path)
    if listing:
      return self._list(listing.group(1), query)
    match = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
    if not match:
      return self._json(404, {"error": {"code": 404, "message": f"no route {path}"}})
    bucket, name = match.group(1), urllib.parse.unquote(match.group(2))
    file = _object_path(self.root, bucket, name)
    if not os.path.isfile(file):
      return self._json(404, {"error": {"code": 404, "message": "No such object"}})
    if self._precondition_failed(file, query):
      return self._json(412, {"error": {"code": 412, "message": "Precondition Failed"}})
    generation = _generation(file)
    if "ifGenerationNotMatch" in query and int(query["ifGenerationNotMatch"]) == generation:
      return self._reply(304, headers={"x-goog-generation": generation})
    if query.get("alt") != "media":
      return self._json(200, self._metadata(bucket, name, file))
    with open(file, "rb") as f:
      data = f.read()
    headers = {"x-goog-generation": generation, "x-goog-metageneration": 1,
               "Content-Type": "application/octet-stream"}
    wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
    if not wanted:
      return self._reply(200, data, headers)
    first, last = wanted.groups()
    if first == "":  # A suffix: the last N bytes.
      first, last = max(len(data) - int(last), 0), len(data) - 1
    else:
      first, last = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
    if first >= len(data) and len(data):
      return self._reply(416, headers=headers)
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return self._reply(206, data[first:last + 1], headers)

  def _list(self, bucket: str, query: dict):
    prefix = query.get("prefix", "")
    start, end = query.get("startOffset", ""), query.get("endOffset")
    base = os.path.join(self.root, bucket)
    items = []
    for folder, _, files in os.walk(base):
      for f in files:
        name = os.path.relpath(os.path.join(folder, f), base).replace(os.sep, "/")
        if name.startswith(prefix) and name >= start and (end is None or name < end):
          items.append(self._metadata(bucket, name, os.path.join(folder, f)))
    return self._json(200, {"kind": "storage#objects",
                            "items": sorted(items, key=lambda i: i["name"])})

  def do_POST(self):  # pylint: disable=invalid-name
    path, query = self._parse()
    match = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path)
    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
    if not match or query.get("uploadType") != "media" or "name" not in query:
      return self._json(400, {"error": {"code": 400, "message": f"unsupported upload {self.path}"}})
    bucket, name = match.group(1), query["name"]
    file = _object_path(self.root, bucket, name)
    with _LOCK:
      if self._precondition_failed(file, query):
        return self._json(412, {"error": {"code": 412, "message": "Precondition Failed"}})
      old = _generation(file) if os.path.isfile(file) else 0
      os.makedirs(os.path.dirname(file), exist_ok=True)
      with open(file, "wb") as f:
        f.write(body)
      if _generation(file) <= old:  # Every write a new generation, however coarse the clock.
        os.utime(file, ns=(old + 1, old + 1))
      return self._json(200, self._metadata(bucket, name, file))

  def do_DELETE(self):  # pylint: disable=invalid-name
    path, query = self._parse()
    match = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
    if not match:
      return self._json(404, {"error": {"code": 404, "message": f"no route {path}"}})
    file = _object_path(self.root, match.group(1), urllib.parse.unquote(match.group(2)))
    with _LOCK:
      if not os.path.isfile(file):
        return self._json(404, {"error": {"code": 404, "message": "No such object"}})
      if self._precondition_failed(file, query):
        return self._json(412, {"error": {"code": 412, "message": "Precondition Failed"}})
      os.remove(file)
    return self._reply(204)


class FakeGCSServer:
  """The JSON API of `_Handler` over `root`, on a free 127.0.0.1 port, in a thread."""

  def __init__(self, root: str):
    self.root, self.clients = root, []
    handler = type("Handler", (_Handler,), {"root": root, "clients": self.clients})
    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    self.httpd.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.httpd.shutdown()
    self.httpd.server_close()


class _Bucket:
  """What orbax asks of a bucket: whether it has a hierarchical namespace (folders); not here."""

  hierarchical_namespace_enabled = False

  def __init__(self, name):
    self.name = name


def _storage_stub() -> types.ModuleType:
  """`google.cloud.storage` reduced to what orbax calls (`Client().get_bucket`), no network."""
  module = types.ModuleType("google.cloud.storage")
  module.Client = type("Client", (), {"get_bucket": lambda self, name: _Bucket(name)})
  return module


@contextlib.contextmanager
def _google_cloud_storage():
  """orbax's one bucket query (is its namespace hierarchical?) answered here, for the block.

  orbax asks it through google-cloud-storage, which would need credentials
  and the network; where that package is not installed, a stub module
  stands in for it, so code that checks for it finds it.
  """
  from orbax.checkpoint._src.path import gcs_utils  # pylint: disable=g-import-not-at-top
  saved = gcs_utils.get_bucket
  gcs_utils.get_bucket = _Bucket
  try:
    importlib.import_module("google.cloud.storage")
    stub = False
  except ImportError:
    sys.modules["google.cloud.storage"] = _storage_stub()
    stub = True
  try:
    yield
  finally:
    gcs_utils.get_bucket = saved
    if stub:
      sys.modules.pop("google.cloud.storage", None)


@contextlib.contextmanager
def fake_gcs(root):
  """`gs://` for epath, TensorStore and ArrayRecord, stored under `root`, inside the block.

  Yields the running `FakeGCSServer`. TensorStore and google-cloud-cpp read
  their variables at each open, so one process may use several in turn.
  """
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  root = os.path.abspath(str(root))
  os.makedirs(root, exist_ok=True)
  saved = {k: os.environ.get(k) for k in _ENV}
  previous = {p: _REGISTRY.get(p) for p in FakeGCSFileSystem.protocol}
  FakeGCSFileSystem.root = root
  with FakeGCSServer(root) as server, _google_cloud_storage():
    os.environ.update({"TENSORSTORE_GCS_HTTP_URL": server.url,
                       "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
                       "CLOUD_STORAGE_EMULATOR_ENDPOINT": server.url})
    for protocol in FakeGCSFileSystem.protocol:
      fsspec.register_implementation(protocol, FakeGCSFileSystem, clobber=True)
    backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
    try:
      yield server
    finally:
      for key, value in saved.items():
        if value is None:
          os.environ.pop(key, None)
        else:
          os.environ[key] = value
      for protocol, cls in previous.items():
        if cls is None:
          _REGISTRY.pop(protocol, None)
        else:
          _REGISTRY[protocol] = cls
      backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
