"""Model runtimes for local generation: llama.cpp (GGUF) and transformers (HF directory).

A runtime loads one model and exposes what the generation loop needs: tokenize, decode one
or many tokens into the KV cache (reusing the longest cached prefix of the prompt), and read
the next-token logits as a float32 numpy vector. The token loop itself lives in
:mod:`schemagen.backends.local`, so both runtimes share sampling, constraints and
fast-forwarding.

Loaded runtimes are cached process-wide by :func:`load_runtime`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import importlib
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from schemagen.errors import ConfigurationError, MissingDependencyError

RuntimeKind = Literal["llama.cpp", "transformers"]


@dataclass
class LocalStats:
    """Counters of one loaded model, shared by every backend using it. Read them, don't write."""

    #: engine set-ups: vocabulary/tokenizer views built (once per model and engine)
    engine_setups: int = 0
    #: grammars compiled (cache misses) and compiled grammars reused (cache hits)
    grammar_compiles: int = 0
    grammar_cache_hits: int = 0
    #: seconds spent in the last grammar compile (0.0 for a hit) and in all compiles
    last_compile_s: float = 0.0
    compile_s_total: float = 0.0
    generations: int = 0
    prompt_tokens: int = 0
    #: prompt tokens whose KV cache was reused from the previous request
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    #: forward passes during generation (one per sampled token, one per fast-forward batch)
    decode_steps: int = 0
    #: tokens the grammar forced and that were fed as a batch instead of sampled
    forced_tokens: int = 0
    #: full token masks computed (greedy decoding skips the mask when the top token is valid)
    masks_computed: int = 0
    #: copy-from-input speculation: draft tokens scored, and those the model's own choice kept
    drafted_tokens: int = 0
    accepted_tokens: int = 0

    def snapshot(self) -> dict[str, float]:
        return asdict(self)


def _missing(package: str) -> MissingDependencyError:
    return MissingDependencyError("Constrained local generation", "local", package=package)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Runtime:
    """What both runtimes provide. Not thread-safe: the backend holds :attr:`lock` around use."""

    kind: RuntimeKind
    path: Path
    device: str
    n_ctx: int
    #: width of the logits vector
    vocab_size: int
    bos_token_id: int | None
    eos_token_id: int
    #: every end-of-generation token (EOS, end-of-turn, ...)
    eog_token_ids: frozenset[int]
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    add_bos: bool

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._outlines_model: Any = None
        self._llg_tokenizer: Any = None
        self.stats = LocalStats()
        #: engine name -> engine bound to this model (see schemagen.backends._local_engines)
        self.engines: dict[str, Any] = {}
        #: (engine, canonical schema) -> compiled grammar, least recently used first
        self.grammars: OrderedDict[tuple[str, str], Any] = OrderedDict()

    # -- tokenizer
    def _encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def tokenize(self, text: str, *, prompt: bool = True) -> list[int]:
        """Token ids of ``text``; special tokens are parsed.

        With ``prompt=True`` (how a rendered prompt is fed) a BOS token is prepended when the
        model asks for one and the text doesn't already start with it.
        """
        ids = self._encode(text)
        if (
            prompt and self.add_bos and self.bos_token_id is not None
            and (not ids or ids[0] != self.bos_token_id)
        ):
            ids = [self.bos_token_id, *ids]
        return ids

    def detokenize(self, ids: list[int]) -> str:
        raise NotImplementedError

    # -- decoding
    def start(self, prompt_ids: list[int]) -> tuple[np.ndarray, int]:
        """Feed the prompt, reusing the cached prefix. Returns (next logits, tokens reused)."""
        raise NotImplementedError

    def step(self, tokens: list[int]) -> np.ndarray:
        """Feed ``tokens`` (one batch) after what is cached; returns the logits after the last."""
        raise NotImplementedError

    #: whether :meth:`step_all` and :meth:`rewind` work (speculative drafts need them)
    can_draft = False
    #: whether speculation is on by default: a forward pass costs far more than the tokens in
    #: it, so the passes a draft saves outweigh the draft tokens the model rejects
    drafts_pay = False

    def step_all(self, tokens: list[int], rows: list[int]) -> np.ndarray:
        """Feed ``tokens`` as one batch; the logits after ``tokens[i]`` for each ``i`` in ``rows``
        (ascending), a row each."""
        raise NotImplementedError

    def rewind(self, n: int) -> None:
        """Forget the last ``n`` tokens fed (a rejected draft); the next feed overwrites them."""
        raise NotImplementedError

    # -- engine views (built once per loaded model)
    def outlines_model(self) -> Any:
        raise NotImplementedError

    def llguidance_tokenizer(self) -> Any:
        if self._llg_tokenizer is None:
            from outlines.backends.llguidance import LLGuidanceBackend

            self._llg_tokenizer = LLGuidanceBackend(self.outlines_model()).llg_tokenizer
        return self._llg_tokenizer

    def info(self) -> dict[str, Any]:
        return {"runtime": self.kind, "path": str(self.path), "device": self.device, "n_ctx": self.n_ctx}


# --------------------------------------------------------------------------- llama.cpp


class LlamaCppRuntime(Runtime):
    kind: RuntimeKind = "llama.cpp"

    def __init__(self, path: Path, *, device: str, n_ctx: int | None, n_threads: int | None) -> None:
        super().__init__()
        self.device = _resolve_device("llama.cpp", device)
        (llama_cpp,) = _runtime_modules("llama.cpp")
        self._lc = llama_cpp
        # Default: half the logical cores (the physical ones on SMT machines) for decoding and
        # for prompt batches alike. llama.cpp threads spin-wait on each other, so more threads
        # than free cores is ruinous: on a shared 2-core machine, 2 prompt threads took 7.7 s
        # for 60 tokens where 1 took 0.3 s, and 2 decode threads ran at 100+ ms/token.
        threads = n_threads or max((os.cpu_count() or 2) // 2, 1)
        if n_ctx is None:
            n_ctx = 4096
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=-1 if self.device == "cuda" else 0,
            logits_all=False,
            verbose=False,
        )
        self.path = path
        self.n_ctx = self.llm.n_ctx()
        self.vocab_size = self.llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._vocab = vocab
        self.eos_token_id = int(self.llm.token_eos())
        bos = int(self.llm.token_bos())
        self.bos_token_id = bos if bos >= 0 else None
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.eog_token_ids = frozenset(
            i for i in range(self.vocab_size) if llama_cpp.llama_vocab_is_eog(vocab, i)
        ) | {self.eos_token_id}
        meta = self.llm.metadata
        self.chat_template = meta.get("tokenizer.chat_template")
        self.bos_token = self._token_text(self.bos_token_id)
        self.eos_token = self._token_text(self.eos_token_id)
        self._logits_buf = np.empty(self.vocab_size, dtype=np.float32)

    def _token_text(self, token: int | None) -> str | None:
        if token is None or token < 0:
            return None
        raw = self._lc.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def _encode(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def detokenize(self, ids: list[int]) -> str:
        return bytes(self.llm.detokenize(ids)).decode("utf-8", errors="replace")

    def _logits(self) -> np.ndarray:
        ptr = self._lc.llama_get_logits_ith(self.llm.ctx, -1)
        floats = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        view = np.ctypeslib.as_array(floats, shape=(self.vocab_size,))
        np.copyto(self._logits_buf, view)
        return self._logits_buf

    def start(self, prompt_ids: list[int]) -> tuple[np.ndarray, int]:
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        reuse = _common_prefix(cached, prompt_ids)
        if reuse == len(prompt_ids):
            reuse -= 1  # re-feed the last prompt token to get fresh logits
        if reuse > 0:
            llm.n_tokens = reuse  # eval() drops the KV cache from n_tokens on
        else:
            llm.reset()
        llm.eval(prompt_ids[reuse:])
        return self._logits(), reuse

    def step(self, tokens: list[int]) -> np.ndarray:
        self.llm.eval(tokens)
        return self._logits()

    can_draft = True

    def step_all(self, tokens: list[int], rows: list[int]) -> np.ndarray:
        # Llama.eval asks for the last row only (logits_all=False: no logits buffer for the whole
        # context); this one batch asks for the rows wanted, with the same bookkeeping as eval().
        llm, n, n_past = self.llm, len(tokens), self.llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=False)
        llm._batch.batch.logits[n - 1] = False
        for i in rows:
            llm._batch.batch.logits[i] = True
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past: n_past + n] = tokens
        llm.n_tokens += n
        ptr = self._lc.llama_get_logits(llm.ctx)
        floats = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        rows_logits: np.ndarray = np.ctypeslib.as_array(floats, shape=(len(rows), self.vocab_size)).copy()
        return rows_logits

    def rewind(self, n: int) -> None:
        if n > 0:
            self.llm.n_tokens -= n  # eval() and step_all() drop the KV cache from n_tokens on

    def outlines_model(self) -> Any:
        if self._outlines_model is None:
            try:
                import outlines
            except ImportError as exc:
                raise _missing("outlines") from exc
            # chat_mode=False: the prompt arrives rendered; Outlines must not wrap it again.
            self._outlines_model = outlines.from_llamacpp(self.llm, chat_mode=False)
        return self._outlines_model

    def llguidance_tokenizer(self) -> Any:
        if self._llg_tokenizer is None:
            try:
                import llguidance.llamacpp
            except ImportError as exc:
                raise _missing("llguidance") from exc
            # The same bridge Outlines' LLGuidanceBackend uses, without building Outlines' own
            # Python-side vocabulary dict (not needed for llguidance).
            with warnings.catch_warnings():
                # it calls llama_token_get_attr once per token, deprecated in llama-cpp-python 0.3.x
                warnings.simplefilter("ignore", DeprecationWarning)
                self._llg_tokenizer = llguidance.llamacpp.lltokenizer_from_vocab(self._vocab)
        return self._llg_tokenizer


# --------------------------------------------------------------------------- transformers


class TransformersRuntime(Runtime):
    kind: RuntimeKind = "transformers"

    def __init__(self, path: Path, *, device: str, n_ctx: int | None, n_threads: int | None) -> None:
        super().__init__()
        self.device = _resolve_device("transformers", device)
        torch, transformers = _runtime_modules("transformers")
        self._torch = torch
        if n_threads and self.device == "cpu":
            torch.set_num_threads(n_threads)
        self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(str(path))
        dtype = torch.float32 if self.device == "cpu" else "auto"
        auto_model: Any = transformers.AutoModelForCausalLM
        model = auto_model.from_pretrained(str(path), dtype=dtype)
        model.to(self.device)
        model.eval()
        self.model: Any = model
        self.path = path
        config = self.model.config
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self.n_ctx = int(n_ctx or getattr(config, "max_position_embeddings", 4096) or 4096)
        tok = self.tokenizer
        self.bos_token = tok.bos_token
        self.eos_token = tok.eos_token
        self.bos_token_id = tok.bos_token_id
        eos = tok.eos_token_id if tok.eos_token_id is not None else config.eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        self.eos_token_id = int(eos)
        eog = {self.eos_token_id}
        cfg_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(cfg_eos, int):
            eog.add(cfg_eos)
        elif isinstance(cfg_eos, list):
            eog.update(int(x) for x in cfg_eos)
        self.eog_token_ids = frozenset(eog)
        self.chat_template = getattr(tok, "chat_template", None)
        self.add_bos = bool(getattr(tok, "add_bos_token", False))
        self._cache: Any = None
        self._tokens: list[int] = []
        # transformers 5 renamed past_key_values to cache and made crop() take a count to remove.
        self._v5 = int(transformers.__version__.split(".")[0]) >= 5

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _forward(self, tokens: list[int], rows: list[int] | None = None) -> np.ndarray:
        """Logits after the last of ``tokens``, or after each of ``rows`` (a row each)."""
        torch = self._torch
        from transformers import DynamicCache

        if self._cache is None:
            self._cache = DynamicCache()
        with torch.inference_mode():
            ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
            cache_arg = {"cache" if self._v5 else "past_key_values": self._cache}
            # the lm_head runs on the kept positions only
            keep = 1 if rows is None else torch.tensor(rows, dtype=torch.long, device=self.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=keep, **cache_arg)
        self._tokens.extend(tokens)
        logits: np.ndarray = (out.logits[0, -1] if rows is None else out.logits[0]).float().cpu().numpy()
        return logits

    def start(self, prompt_ids: list[int]) -> tuple[np.ndarray, int]:
        reuse = _common_prefix(self._tokens, prompt_ids)
        if reuse == len(prompt_ids):
            reuse -= 1
        if reuse > 0 and self._cache is not None and hasattr(self._cache, "crop"):
            drop = len(self._tokens) - reuse
            self._cache.crop(-drop if self._v5 else reuse)
            self._tokens = self._tokens[:reuse]
        else:
            reuse = 0
            self._cache = None
            self._tokens = []
        return self._forward(prompt_ids[reuse:]), reuse

    def step(self, tokens: list[int]) -> np.ndarray:
        return self._forward(tokens)

    can_draft = True
    # Each forward pass runs every module in Python (56 ms for one token of SmolLM2-135M on
    # this CPU, 250 ms for 69): batches are nearly free.
    drafts_pay = True

    def step_all(self, tokens: list[int], rows: list[int]) -> np.ndarray:
        return self._forward(tokens, rows)

    def rewind(self, n: int) -> None:
        if n > 0:
            self._cache.crop(-n)  # a negative count removes that many (transformers 4 and 5)
            del self._tokens[-n:]

    def outlines_model(self) -> Any:
        if self._outlines_model is None:
            try:
                import outlines
            except ImportError as exc:
                raise _missing("outlines") from exc
            self._outlines_model = outlines.from_transformers(self.model, self.tokenizer)
        return self._outlines_model

    def llguidance_tokenizer(self) -> Any:
        if self._llg_tokenizer is None:
            try:
                import llguidance.hf
            except ImportError as exc:
                raise _missing("llguidance") from exc
            self._llg_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.vocab_size)
        return self._llg_tokenizer


# --------------------------------------------------------------------------- GGUF -> HF directory


def default_cache_dir() -> Path:
    env = os.environ.get("SCHEMAGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "schemagen"


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


_CONVERT_LOCK = threading.Lock()


def hf_dir_from_gguf(
    gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A transformers model directory converted from a GGUF file, cached by the file's SHA-256.

    The first call dequantizes the GGUF with transformers' GGUF support (needs ``accelerate``
    and ``gguf``) and saves model and tokenizer with ``save_pretrained``; later calls return the
    cached directory without touching transformers.
    """
    gguf = Path(gguf_path).expanduser().resolve()
    if not gguf.is_file():
        raise ConfigurationError(f"GGUF file not found: {gguf}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / "hf" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    with _CONVERT_LOCK:
        if (target / "config.json").is_file():
            return target
        try:
            import transformers
        except ImportError as exc:
            raise MissingDependencyError("Converting a GGUF file for transformers", "transformers",
                                         package="transformers") from exc
        root.joinpath("hf").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root / "hf"))
        try:
            tokenizer: Any = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            try:
                model: Any = transformers.AutoModelForCausalLM.from_pretrained(
                    str(gguf.parent), gguf_file=gguf.name
                )
            except ValueError as exc:
                if "accelerate" in str(exc):
                    raise MissingDependencyError("Converting a GGUF file for transformers", "transformers",
                                                 package="accelerate") from exc
                raise
            # The GGUF weights are dequantized to float on load; only the marker blocks saving.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
            try:
                tmp.rename(target)
            except OSError:
                if not (target / "config.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- process-wide cache

_RUNTIMES: dict[tuple[Any, ...], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()
#: how many models were really loaded (cache misses), for tests and diagnostics
LOAD_COUNT = {"count": 0}


#: kind -> (what needs it, extra, package, modules): the one import check both runtimes use.
_REQUIRES: dict[RuntimeKind, tuple[str, str, str, tuple[str, ...]]] = {
    "llama.cpp": ("Local generation from a GGUF file", "local", "llama-cpp-python", ("llama_cpp",)),
    "transformers": (
        "Local generation from a Hugging Face model directory", "transformers", "torch/transformers",
        ("torch", "transformers"),
    ),
}


def _runtime_modules(kind: RuntimeKind) -> list[Any]:
    """The runtime's modules, imported; MissingDependencyError with the pip extra otherwise."""
    what, extra, package, modules = _REQUIRES[kind]
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as exc:
        raise MissingDependencyError(what, extra, package=package) from exc


def _resolve_device(kind: RuntimeKind, device: str) -> str:
    """Where a model asked for on ``device`` runs: "cuda" when wanted and available, else "cpu".
    Also the cache key, so "auto" and "cuda" share an entry."""
    if device not in ("auto", "cuda", "gpu", "cpu"):
        raise ConfigurationError(f"Unknown device {device!r}; use 'auto', 'cuda' or 'cpu'")
    if device == "cpu":
        return "cpu"
    try:
        main = _runtime_modules(kind)[0]
    except MissingDependencyError:
        return device  # the runtime's constructor raises it
    available = main.llama_supports_gpu_offload() if kind == "llama.cpp" else main.cuda.is_available()
    return "cuda" if available else "cpu"


def load_runtime(
    kind: RuntimeKind, path: Path, *, device: str = "auto", n_ctx: int | None = None,
    n_threads: int | None = None,
) -> Runtime:
    key = (kind, str(path), _resolve_device(kind, device), n_ctx, n_threads)
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            cls = LlamaCppRuntime if kind == "llama.cpp" else TransformersRuntime
            runtime = cls(path, device=device, n_ctx=n_ctx, n_threads=n_threads)
            if not _RUNTIMES:
                atexit.register(_close_at_exit)
            LOAD_COUNT["count"] += 1
            _RUNTIMES[key] = runtime
        return runtime


def _close_at_exit() -> None:
    # llama-cpp-python's Llama.__del__ fails during interpreter teardown ("'NoneType' object
    # is not callable"); closing the cached models while the modules still exist avoids it.
    with _RUNTIMES_LOCK:
        for runtime in _RUNTIMES.values():
            llm = getattr(runtime, "llm", None)
            if llm is not None:
                with contextlib.suppress(Exception):
                    llm.close()
        _RUNTIMES.clear()


def clear_runtimes() -> None:
    """Forget every loaded model (each is freed once no backend holds it any more)."""
    with _RUNTIMES_LOCK:
        _RUNTIMES.clear()
