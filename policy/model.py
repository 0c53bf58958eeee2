"""The ONNX model as the node runs it: one session, checked against the contract, warmed up.

The session is created once per model file. Execution providers are asked for only when
onnxruntime lists them *and* the session actually comes up on them; the provider in use is logged
once per load and shown in the node status. A model whose metadata, input or output names, dtypes
or shapes differ from ``perception.spec.MODEL_SPEC`` is refused with a ModelError.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from bus.schema import DecisionLabel
from core.defaults import READING_THRESHOLD
from core.errors import ConfigError, ModelError
from core.paths import read_regular_file
from perception.cudagraph import CapturedRunner
from perception.modelmeta import ModelMeta, parse_metadata
from perception.neighbours import NEIGHBOUR_OUTPUT
from perception.onnxrun import check_io, run_all_outputs
from perception.readcheck import (
    Alternative,
    conflict_alternatives,
    decisive,
    neighbour_settings,
    read_rule_set,
    reading_unwritten,
    rerun_inputs,
)
from perception.rule_encoder import (
    DEFAULT_ENCODER_DIR,
    RuleEncoder,
    encoder_layer,
    read_in_part,
    state_width,
    unreadable_script,
)
from perception.sentence_reader import SentenceEncoder, SentenceReader, spec_of
from perception.spec import MODEL_SPEC
from perception.splitgraph import IMAGE_FEATURES, split_model

__all__ = [
    "EncodedRules",
    "ModelOutputs",
    "PolicyModel",
    "choose_providers",
    "HEAD_ON_CPU_UP_TO",
    "small_head_session",
    "inference_plan",
    "preload_gpu_libraries",
]

log = logging.getLogger(__name__)

_S = MODEL_SPEC

_TRT, _CUDA, _CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
_WANTED = {"auto": (_TRT, _CUDA, _CPU), "tensorrt": (_TRT, _CUDA, _CPU), "cuda": (_CUDA, _CPU)}


# The largest model file the node reads (the shipped one is 6.4 MB; the project keeps decision
# models under 10 MB). A reload reads the file in the serving loop: a 1 GiB file dropped on the
# model path once paused every vehicle's decisions for 1.7 s before onnxruntime refused it.
MAX_MODEL_BYTES = 256 * 1024 * 1024


def choose_providers(requested: str, available: list[str] | None = None) -> list[str]:
    """Providers to ask for, best first, limited to those this onnxruntime build has.

    ``auto`` never asks for a provider that is not listed (no error spam on CPU machines);
    an explicit ``tensorrt``/``cuda`` that is not listed is a ConfigError.
    """
    available = list(ort.get_available_providers()) if available is None else available
    if requested == "cpu":
        return [_CPU]
    wanted = _WANTED.get(requested)
    if wanted is None:
        raise ConfigError(f"unknown providers setting {requested!r}")
    chosen = [p for p in wanted if p in available or p == _CPU]
    if requested != "auto" and chosen[0] != wanted[0]:
        raise ConfigError(
            f"providers={requested} but this onnxruntime has only {', '.join(available)}"
        )
    return chosen


def preload_gpu_libraries() -> None:
    """Load the CUDA and cuDNN libraries of onnxruntime-gpu's pip packages (its ``cuda`` and
    ``cudnn`` extras install them under site-packages, where the dynamic loader does not look)
    before a GPU session is created; libraries installed system-wide are found either way.
    onnxruntime >= 1.21 has ``preload_dlls``; a failure is logged, and the session then comes
    up on the CPU provider and says so."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # onnxruntime's own, or OSError from the loader
        log.warning("onnxruntime.preload_dlls failed (%s); relying on the system's libraries", exc)


@dataclass(frozen=True)
class ModelOutputs:
    """One batch's outputs: decision probabilities [N, labels], per-rule class probabilities
    [N, R, classes], the image out-of-distribution probability [N], and per frame the rules
    whose unsure reading decides it (perception.readcheck; empty without the check)."""

    probabilities: np.ndarray
    rule_classes: np.ndarray
    image_ood: np.ndarray
    unsure: tuple[tuple[int, ...], ...] = ()
    # Per frame, the rules whose contradiction decides it (perception.readcheck.
    # conflict_alternatives); None where the model has no reading graph to ask it with.
    clashes: tuple[tuple[int, ...], ...] | None = None


class EncodedRules(NamedTuple):
    """A rule set as the model reads it, computed once per rule-set version: the encoder's
    states [R,T,D] and mask [R,T]; for a split model also the rule set's features [F] and the
    per-rule classes [R,C], so frames never run the rule graph."""

    states: np.ndarray
    mask: np.ndarray
    features: np.ndarray | None = None
    classes: np.ndarray | None = None
    # Rules in a script the model does not read (perception.rule_encoder.unreadable_script)
    # or longer than it reads (read_in_part): not understood, whatever the model says.
    unreadable: tuple[int, ...] = ()
    # The rule set's features had an unsurely read rule been read as its runner-up class
    # (perception.readcheck): the frames this changes the decision of are not acted on.
    alternatives: tuple[Alternative, ...] = ()
    # Each rule's sentence vector [R, 512] (zero rows past the rules), for a model with the
    # sentence-vector input (MODEL_SPEC.rule_sentences); None for any other model.
    sentences: np.ndarray | None = None
    # The rule set's features had a rule of a contradicting pair been read as the other
    # (perception.readcheck.conflict_alternatives); None: not computed (no reading graph).
    conflicts: tuple[Alternative, ...] | None = None
    # Each rule's parameter readings [R, K], in MODEL_SPEC.rule_param_layers order (the limit,
    # hours, lane and merge it was read with); empty for a model without a reading graph.
    params: tuple[np.ndarray, ...] = ()


def inference_plan(provider: str, runs: int, threads: int) -> tuple[int, int]:
    """(frame-graph runs at once, onnxruntime intra-op threads per run) for the requested
    ``runs`` (0 = choose) and ``threads`` (0 = choose).

    On a CPU the image encoder's small convolutions parallelise poorly inside one run: on 2
    cores one run of 8 frames on 2 threads took 2.53 ms and two runs of 4 frames side by side,
    1 thread each, 2.07 ms (1.15x the node's decisions per second; docs/benchmarks.md, "Node").
    So on a CPU with 2 or more cores 0 means 2 runs, each with half the cores unless
    ``threads`` says otherwise; on a GPU one run per batch (splitting it only adds launches)."""
    cores = os.cpu_count() or 1
    if runs == 0:
        runs = min(2, cores) if provider == _CPU else 1
    if threads == 0 and runs > 1:
        threads = max(1, cores // runs)
    return runs, threads


def small_head_session(graph: bytes) -> ort.InferenceSession:
    """The reading check's head graph (perception.splitgraph) on one CPU thread, for the small
    batches of a model on a GPU. The head is a few small layers on the frames' image features,
    which the frame graph already returned to the host, so on a GPU a small batch's head run is
    launch overhead: on an H200 the check costs 1.37 ms at batch 1 with the head on CUDA and
    1.10 with it on one CPU thread, 1.56 / 1.36 at batch 8, but 2.17 / 2.75 at 64
    (docs/benchmarks.md, "GPU"); so batches up to :data:`HEAD_ON_CPU_UP_TO` use it."""
    one = ort.SessionOptions()
    one.log_severity_level = 3
    one.intra_op_num_threads = 1
    one.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, one, providers=[_CPU])


HEAD_ON_CPU_UP_TO = 16


@dataclass
class PolicyModel:
    """A loaded, validated, warmed-up model with the text encoder it was trained on.

    ``encode_rules`` (once per rule-set version, cached by the Decider) and ``run_encoded`` (per
    batch) are the only calls on the serving path. When the model exports its rule-set features
    (perception.splitgraph), ``encode_rules`` also runs the rule graph and frames run only the
    frame graph: the text branch costs nothing per frame."""

    path: Path
    session: ort.InferenceSession
    meta: ModelMeta
    encoder: RuleEncoder
    provider: str
    mtime_ns: int
    load_s: float
    rules_session: ort.InferenceSession | None = None
    frame_session: ort.InferenceSession | None = None
    reading_session: ort.InferenceSession | None = None
    reading_inputs: tuple[str, ...] = ()
    # Rules whose top class probability is below this are checked (perception.readcheck);
    # 0 = no check.
    reading_threshold: float = 0.0
    # The neighbour reading (perception.neighbours): rule_support per rule set, and how many of
    # the neighbours must agree to overrule a reading. None: the model has no index.
    neighbours_session: ort.InferenceSession | None = None
    min_votes: int = 0
    # The frame graph after the image encoder (perception.splitgraph): the reading check runs
    # it on the frames' image features. None: the check reruns the frame graph.
    head_session: ort.InferenceSession | None = None
    # Frame-graph runs at once (``runs``): the Decider splits a batch into this many shares,
    # each decided on one of the ``runners`` threads (onnxruntime and OpenCV release the GIL);
    # the sessions' intra-op threads are chosen for it (inference_plan). None: one run per batch.
    runners: ThreadPoolExecutor | None = None
    runs: int = 1
    # Beside a GPU model: the head graph on one CPU thread, for batches up to
    # HEAD_ON_CPU_UP_TO (small_head_session).
    head_small: ort.InferenceSession | None = None
    # On the CUDA provider: the frame graph replayed as captured CUDA graphs
    # (perception.cudagraph); None: every batch runs frame_session.
    captured: CapturedRunner | None = None
    # The model's sentence reader (perception.sentence_reader): its class reading of each rule,
    # averaged with the token reader's before the decision or checked against it, by its mode.
    # None: the model has none.
    sentence: SentenceReader | None = None
    # For a model with the sentence-vector input (MODEL_SPEC.rule_sentences): the encoder of
    # each rule's vector, run once per rule set in encode_rules. None: the model has no such
    # input.
    vectors: SentenceEncoder | None = None

    @property
    def split(self) -> bool:
        """Whether frames run the frame graph only (rule graph once per rule set)."""
        return self.frame_session is not None

    @property
    def version(self) -> str:
        return self.meta.model_version

    @property
    def labels(self) -> tuple[DecisionLabel, ...]:
        return self.meta.labels

    @classmethod
    def load(
        cls,
        path: str | Path,
        providers: str = "auto",
        warmup_batch: int = 8,
        encoder_dir: str | Path = DEFAULT_ENCODER_DIR,
        encoder: RuleEncoder | None = None,
        threads: int = 0,
        spinning: bool = False,
        reading_threshold: float = READING_THRESHOLD,
        neighbour_reading: bool = True,
        inference_threads: int = 1,
        cuda_graphs: bool = True,
        sentence_encoder: SentenceEncoder | None = None,
    ) -> PolicyModel:
        """Load and check the model, and the text encoder its metadata names (``encoder``: one
        already loaded, e.g. the previous model's on a hot reload). ``threads``: onnxruntime
        intra-op threads (0 = its default); ``spinning``: whether they spin-wait between runs
        (off: the node's CPU follows its load instead of keeping cores busy);
        ``reading_threshold``: the reading check's (perception.readcheck; 0 = off);
        ``neighbour_reading``: whether a model's neighbour index overrules readings
        (perception.neighbours); ``inference_threads``: frame-graph runs at once, each on its
        share of a batch (policy.decider), 0 = :func:`inference_plan` chooses;
        ``cuda_graphs``: on the CUDA provider, replay the frame graph as CUDA graphs captured
        per batch bucket up to ``warmup_batch`` (perception.cudagraph; a larger batch runs
        plainly); ``sentence_encoder``: a sentence reader's encoder already loaded (a hot
        reload), for a model that has a sentence reader (perception.sentence_reader)."""
        path = Path(path)
        t0 = time.perf_counter()
        if not path.exists():
            raise ModelError(f"model file {path} not found (train one, or pass --model PATH)")
        mtime_ns = path.stat().st_mtime_ns
        wanted = choose_providers(providers)
        if wanted[0] != _CPU:
            preload_gpu_libraries()
        runs, threads = inference_plan(wanted[0], inference_threads, threads)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; provider fallback is reported by us, once
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        try:  # once: the session and the graph split both read it
            data = read_regular_file(path, MAX_MODEL_BYTES, "model file")
        except ConfigError as exc:
            raise ModelError(str(exc)) from exc
        try:
            session = ort.InferenceSession(data, sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        in_use = session.get_providers()[0]
        if in_use != wanted[0]:
            log.warning("%s did not come up on %s; running on %s", path, wanted[0], in_use)
        meta = parse_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))
        layer = encoder_layer(meta.encoder, str(path))
        check_io(session, path, len(meta.rule_classes), state_width(layer))
        if encoder is None or encoder.identity() != meta.encoder:
            # One thread: the encoder runs beside the decision session (prefetch), not instead;
            # at the layer the model was trained to read.
            try:
                encoder = RuleEncoder.load(
                    Path(encoder_dir), "cpu", threads=1, cache_size=4096, layer=layer
                )
            except ConfigError as exc:  # a layer this encoder does not have: the model's fault
                raise ModelError(f"{path} reads text encoder layer {layer}: {exc}") from exc
        if encoder.identity() != meta.encoder:
            raise ModelError(
                f"{path} was trained on text encoder {meta.encoder['model_sha256'][:12]}, "
                f"{encoder_dir} holds {encoder.identity()['model_sha256'][:12]}"
            )
        sentence_spec = spec_of(session.get_modelmeta().custom_metadata_map, meta.rule_classes)
        rules_session = frame_session = reading_session = neighbours_session = None
        head_session = head_small = None
        has_rule_set = _S.rule_set_output in {o.name for o in session.get_outputs()}
        parts = split_model(data) if has_rule_set else None
        if parts is not None and not neighbour_reading:
            parts = dataclasses.replace(parts, neighbours=None)
        if parts is not None:
            try:
                rules_session = ort.InferenceSession(parts.rules, opts, providers=wanted)
                frame_session = ort.InferenceSession(parts.frame, opts, providers=wanted)
                if parts.reading is not None and (
                    reading_threshold > 0 or parts.neighbours or sentence_spec is not None
                ):
                    reading_session = ort.InferenceSession(parts.reading, opts, providers=wanted)
                if parts.neighbours is not None and parts.reading is not None:
                    neighbours_session = ort.InferenceSession(
                        parts.neighbours, opts, providers=wanted
                    )
                if parts.head is not None and reading_session is not None:
                    head_session = ort.InferenceSession(parts.head, opts, providers=wanted)
                    if in_use != _CPU:
                        head_small = small_head_session(parts.head)
            except Exception as exc:
                log.warning("%s: split graphs do not load (%s); running it whole", path, exc)
                rules_session = frame_session = reading_session = neighbours_session = None
                head_session = head_small = None
        if sentence_spec is not None and reading_session is None:
            # Its figures are those of the averaged reading: running without it would change
            # its decisions silently.
            raise ModelError(
                f"{path} has a sentence reader but no reading graph loads to apply it with"
            )
        sentence = None
        if sentence_spec is not None:
            sentence = SentenceReader(sentence_spec, sentence_encoder)
            sentence_encoder = sentence.encoder
        vectors = None
        if _S.rule_sentence_input in {i.name for i in session.get_inputs()}:
            vectors = sentence_encoder if sentence_encoder is not None else SentenceEncoder()
        if reading_threshold > 0 and reading_session is None:
            log.warning("%s: no reading graph; the reading check is off for it", path)
        runs = runs if frame_session is not None else 1  # a whole-graph model runs as one
        captured = None
        if cuda_graphs and in_use == _CUDA and parts is not None and frame_session is not None:
            captured = CapturedRunner.build(parts.frame, frame_session, max(1, warmup_batch))
        model = cls(
            path,
            session,
            meta,
            encoder,
            in_use,
            mtime_ns,
            0.0,
            rules_session,
            frame_session,
            reading_session,
            parts.reading_inputs if parts is not None and reading_session is not None else (),
            reading_threshold if reading_session is not None else 0.0,
            neighbours_session,
            neighbour_settings(session.get_modelmeta().custom_metadata_map)[1]
            if neighbours_session is not None
            else 0,
            head_session,
            ThreadPoolExecutor(runs, thread_name_prefix="infer") if runs > 1 else None,
            runs,
            head_small,
            captured,
            sentence,
            vectors,
        )
        model.warmup(warmup_batch)
        model.load_s = time.perf_counter() - t0
        log.info(
            "model %s version %s on %s (%s%s; loaded + warmed up in %.0f ms)",
            path,
            meta.model_version,
            in_use,
            "rule graph once per rule set" if model.split else "whole graph per frame",
            f"; CUDA graphs for batches up to {captured.largest}" if captured else "",
            model.load_s * 1e3,
        )
        return model

    def encode_rules(self, texts: tuple[str, ...]) -> EncodedRules:
        """A rule set's encoder states and mask (``perception.rule_encoder``, the training path),
        and for a split model its features and rule classes from the rule graph."""
        states, mask = self.encoder.encode_rule_set(texts)
        part = read_in_part(mask)
        unreadable = tuple(i for i, t in enumerate(texts) if unreadable_script(t) or part[i])
        vecs = None
        if self.vectors is not None:
            vecs = _S.rule_sentences.zeros(1)[0]  # [R, 512]
            kept = list(texts)[: _S.max_rules]
            vecs[: len(kept)] = self.vectors.encode(kept)
        if self.rules_session is None:
            return EncodedRules(states, mask, unreadable=unreadable, sentences=vecs)
        wanted = [_S.rule_set_output, _S.rule_output, *self.reading_inputs[1:]]
        clashes: tuple[Alternative, ...] | None = None
        try:
            feeds = {_S.rules_input: states[None], _S.rule_mask_input: mask[None]}
            rule_feeds = dict(feeds)
            if vecs is not None:
                rule_feeds[_S.rule_sentence_input] = vecs[None]
            feats, classes, *params = self.rules_session.run(wanted, rule_feeds)
            alts: tuple[Alternative, ...] = ()
            if self.reading_session is not None:
                support = (
                    self.neighbours_session.run([NEIGHBOUR_OUTPUT], feeds)[0][0]
                    if self.neighbours_session is not None
                    else None
                )
                one, read, alts, _ = read_rule_set(
                    self.reading_session,
                    self.reading_inputs,
                    np.asarray(feats[0]),
                    [np.asarray(classes[0]), *(np.asarray(p[0]) for p in params)],
                    mask,
                    self.reading_threshold,
                    support,
                    self.meta.rule_classes,
                    self.min_votes,
                    None
                    if self.sentence is None
                    else (self.sentence.read(texts, _S.max_rules), self.sentence.spec),
                    texts[: _S.max_rules],
                )
                feats, classes = one[None], read[None]
                clashes = conflict_alternatives(
                    self.reading_session,
                    self.reading_inputs,
                    [np.asarray(read), *(np.asarray(p[0]) for p in params)],
                    mask,
                    self.meta.rule_classes,
                )
        except Exception as exc:
            raise ModelError(f"rule graph failed: {exc}") from exc
        if params:  # the parameter readings are outputs of the rule graph (a reading graph)
            top = np.asarray(classes[0]).argmax(-1)
            unreadable = tuple(
                sorted(
                    set(unreadable)
                    | {
                        r
                        for r, t in enumerate(texts[: _S.max_rules])
                        if reading_unwritten(
                            t,
                            self.meta.rule_classes[top[r]],
                            [p[0][r] for p in params],
                            # what the words write is the reading check's alternative where
                            # it runs (perception.readcheck.read_rule_set)
                            check_off=self.reading_session is None or self.reading_threshold <= 0,
                        )
                    }
                )
            )
        return EncodedRules(
            states,
            mask,
            np.asarray(feats[0]),
            np.asarray(classes[0]),
            unreadable,
            alts,
            vecs,
            clashes,
            tuple(np.asarray(p[0]) for p in params),
        )

    def run_encoded(
        self, images: np.ndarray, rules: list[EncodedRules], speeds: np.ndarray
    ) -> ModelOutputs:
        """uint8 [N,H,W,3], one EncodedRules per frame, float32 [N,1] -> outputs. A split model
        runs only the frame graph; otherwise the whole graph with the stacked token states."""
        if self.frame_session is None or any(r.features is None for r in rules):
            states = np.stack([r.states for r in rules])
            masks = np.stack([r.mask for r in rules])
            vecs = None if self.vectors is None else np.stack([r.sentences for r in rules])  # type: ignore[misc]
            return self.run(images, states, masks, speeds, vecs)
        feeds = {
            _S.image_input: images,
            _S.speed_input: speeds,
            _S.rule_set_output: np.stack([r.features for r in rules]),  # type: ignore[misc]
        }
        n = images.shape[0]
        head = self.head_session
        if self.head_small is not None and n <= HEAD_ON_CPU_UP_TO:
            head = self.head_small
        names = [_S.output, _S.ood_output, *([IMAGE_FEATURES] if head is not None else [])]
        try:
            outs = self.captured.run(names, feeds) if self.captured is not None else None
            probs, ood, *img = outs if outs is not None else self.frame_session.run(names, feeds)
        except Exception as exc:
            raise ModelError(f"inference failed: {exc}") from exc
        if probs.shape != (n, len(self.labels)):
            raise ModelError(f"model returned shape {probs.shape}")
        classes = np.stack([r.classes for r in rules])  # type: ignore[misc]
        unsure: tuple[tuple[int, ...], ...] = ()
        clashes: tuple[tuple[int, ...], ...] | None = None
        if all(r.conflicts is not None for r in rules):
            clashes = ((),) * n
        if any(r.alternatives or r.conflicts for r in rules):
            graph, per_frame = rerun_inputs(
                self.frame_session, head, images, speeds, img[0] if img else None
            )
            decided = probs.argmax(axis=1)
            try:
                if any(r.alternatives for r in rules):
                    unsure = tuple(
                        decisive(graph, per_frame, decided, [r.alternatives for r in rules])
                    )
                if clashes is not None and any(r.conflicts for r in rules):
                    clashes = tuple(
                        decisive(graph, per_frame, decided, [r.conflicts or () for r in rules])
                    )
            except Exception as exc:
                raise ModelError(f"reading check failed: {exc}") from exc
        return ModelOutputs(
            np.asarray(probs, np.float32),
            classes,
            np.asarray(ood, np.float32).reshape(n),
            unsure,
            clashes,
        )

    def run(
        self,
        images: np.ndarray,
        states: np.ndarray,
        masks: np.ndarray,
        speeds: np.ndarray,
        sentences: np.ndarray | None = None,
    ) -> ModelOutputs:
        """uint8 [N,H,W,3], float32 [N,R,T,D], float32 [N,R,T], float32 [N,1] -> outputs;
        ``sentences`` float32 [N,R,512], for (and only for) a model with the sentence input."""
        if (sentences is None) != (self.vectors is None):
            raise ModelError(
                f"the model {'reads' if self.vectors is not None else 'has no'} sentence-vector "
                f"input, but they were {'not ' if sentences is None else ''}given"
            )
        feeds = _S.feeds(images, states, masks, speeds)
        if sentences is not None:
            feeds[_S.rule_sentence_input] = sentences
        try:  # one session.run: the node's micro-batch is the batch
            out = run_all_outputs(self.session, feeds, batch_size=len(images))
        except Exception as exc:
            raise ModelError(f"inference failed: {exc}") from exc
        probs = out[_S.output]
        n = images.shape[0]
        if probs.shape != (n, len(self.labels)):
            raise ModelError(f"model returned shape {probs.shape}")
        return ModelOutputs(probs, out[_S.rule_output], out[_S.ood_output].reshape(n))

    def warmup(self, batch: int) -> None:
        blank = self.encode_rules(())
        wide = _S.with_rule_width(self.encoder.width)  # several encoder layers: wider
        for n in sorted({1, max(1, batch)}):
            vecs = None if self.vectors is None else _S.rule_sentences.zeros(n)
            image, states, masks, speeds = (i.zeros(n) for i in wide.inputs)
            self.run(image, states, masks, speeds, vecs)
            self.run_encoded(_S.image.zeros(n), [blank] * n, _S.speed.zeros(n))
