"""AVEmotion: a ViT face-frame encoder (ViT, DINOv2, ...) and an audio encoder (AST or Whisper's encoder) joined
by a fusion head.

Shapes used throughout: B batch, T video frames, F spectrogram frames, M mel bins, N audio tokens,
D = `config.fusion_hidden_size`, H fusion heads.

This file travels to the Hub as remote code next to ``configuration_avemotion.py``: it imports nothing
from ``hf_avemotion`` beyond that file.
"""

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration_avemotion import AVEmotionConfig, AVEmotionSpeechConfig

_MASK_VALUE = -1e9  # additive mask for padded keys; every sequence keeps its always-valid null token


@dataclass
class AVEmotionModelOutput(ModelOutput):
    """
    Args:
        pooled_output (`torch.FloatTensor` of shape `(B, P)`): fused clip embedding fed to the classifier
            (P = 2D for cross-attention/concat/late, 3D for joint transformer, D for single-modality).
        audio_embeds (`torch.FloatTensor` of shape `(B, D)`, *optional*): pooled audio embedding.
        video_embeds (`torch.FloatTensor` of shape `(B, D)`, *optional*): pooled video embedding.
        audio_hidden_states (`torch.FloatTensor` of shape `(B, 1+N, D)`, *optional*): audio tokens after fusion
            (index 0 is the learned null token).
        video_hidden_states (`torch.FloatTensor` of shape `(B, 1+T, D)`, *optional*): frame tokens after fusion.
        audio_to_video_attentions (`tuple[torch.FloatTensor]`, *optional*): one `(B, H, 1+N, 1+T)` tensor per fusion
            layer, when `output_attentions=True`: how each audio token attends over the frames.
        video_to_audio_attentions (`tuple[torch.FloatTensor]`, *optional*): one `(B, H, 1+T, 1+N)` tensor per layer.
        video_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*) and audio_mask (`torch.BoolTensor` of shape
            `(B,)`, *optional*): the masks actually used (after modality dropout).
        frame_embeds (`torch.FloatTensor` of shape `(B, T, Dv)`, *optional*), audio_states (`torch.FloatTensor` of
            shape `(B, N, Da)`, *optional*) and audio_frame_mask (`torch.BoolTensor` of shape `(B, F)`, *optional*):
            the encoders' outputs and the spectrogram-frame mask in use.
        audio_layer_statistics (`torch.FloatTensor` of shape `(B, L+1, 2Da)`, *optional*): with
            `config.modality_heads`, the per-layer mean and std of the Whisper states over the real audio (the
            speech head's input).
    """

    pooled_output: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    audio_hidden_states: torch.FloatTensor | None = None
    video_hidden_states: torch.FloatTensor | None = None
    audio_to_video_attentions: tuple[torch.FloatTensor, ...] | None = None
    video_to_audio_attentions: tuple[torch.FloatTensor, ...] | None = None
    video_mask: torch.BoolTensor | None = None
    audio_mask: torch.BoolTensor | None = None
    frame_embeds: torch.FloatTensor | None = None
    audio_states: torch.FloatTensor | None = None
    audio_frame_mask: torch.BoolTensor | None = None
    audio_layer_statistics: torch.FloatTensor | None = None


@dataclass
class AVEmotionClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): returned when `labels` are given.
        logits (`torch.FloatTensor` of shape `(B, num_labels)`): fused class scores (or regression outputs).
        audio_logits / video_logits (`torch.FloatTensor` of shape `(B, num_labels)`, *optional*): per-modality
            scores: late fusion's heads, or with `config.modality_heads` the unimodal models' log-probabilities.
        fusion_weights (`torch.FloatTensor` of shape `(B, 2)`, *optional*): late fusion's (audio, video) weights.
        Remaining fields as in [`AVEmotionModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    video_logits: torch.FloatTensor | None = None
    fusion_weights: torch.FloatTensor | None = None
    pooled_output: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    audio_to_video_attentions: tuple[torch.FloatTensor, ...] | None = None
    video_to_audio_attentions: tuple[torch.FloatTensor, ...] | None = None


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention. query [B,H,Q,d], key/value [B,H,K,d], attention_mask additive [B,1,1,K]."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def additive_key_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool key mask [B,K] (True = attend) -> additive mask [B,1,1,K]."""
    return (~mask)[:, None, None, :].to(dtype) * _MASK_VALUE


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden [B,L,D] over positions where mask [B,L] is True -> [B,D] (zero where none)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class AVEmotionAttention(nn.Module):
    """Multi-head attention of a query sequence over a key/value sequence (self-attention when they are the same),
    dispatched through transformers' attention interface (eager, sdpa, ...)."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.fusion_num_heads
        self.head_dim = config.fusion_hidden_size // config.fusion_num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.dropout = config.fusion_dropout
        size = config.fusion_hidden_size
        self.q_proj = nn.Linear(size, size)
        self.k_proj = nn.Linear(size, size)
        self.v_proj = nn.Linear(size, size)
        self.o_proj = nn.Linear(size, size)

    def forward(self, queries, keys, key_mask, output_attentions=False):
        """queries [B,Q,D], keys [B,K,D], key_mask bool [B,K] -> ([B,Q,D], weights [B,H,Q,K] or None)."""
        batch, num_queries, _ = queries.shape
        q = self.q_proj(queries).view(batch, num_queries, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(keys).view(batch, keys.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(keys).view(batch, keys.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
        attention_interface: Callable = eager_attention_forward
        if not output_attentions:  # only the eager path returns the weights
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        output, weights = attention_interface(
            self, q, k, v, additive_key_mask(key_mask, q.dtype),
            dropout=self.dropout if self.training else 0.0, scaling=self.scaling,
        )
        output = self.o_proj(output.reshape(batch, num_queries, -1))
        return output, (weights if output_attentions else None)


class AVEmotionMLP(nn.Module):
    def __init__(self, config: AVEmotionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.fusion_hidden_size, config.fusion_intermediate_size)
        self.fc2 = nn.Linear(config.fusion_intermediate_size, config.fusion_hidden_size)
        self.dropout = nn.Dropout(config.fusion_dropout)

    def forward(self, hidden):
        return self.fc2(self.dropout(F.gelu(self.fc1(hidden))))


class AVEmotionAttentionBlock(nn.Module):
    """Pre-norm transformer block: `x + Attn(LN(x), LN(context))`, then `x + MLP(LN(x))`.
    With no context it is a self-attention block."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__()
        size = config.fusion_hidden_size
        self.query_norm = nn.LayerNorm(size)
        self.context_norm = nn.LayerNorm(size)
        self.attention = AVEmotionAttention(config)
        self.mlp_norm = nn.LayerNorm(size)
        self.mlp = AVEmotionMLP(config)
        self.dropout = nn.Dropout(config.fusion_dropout)

    def forward(self, hidden, mask, context=None, context_mask=None, output_attentions=False):
        """hidden [B,L,D], mask [B,L]; context [B,K,D], context_mask [B,K] -> ([B,L,D], weights [B,H,L,K])."""
        if context is None:
            context, context_mask = hidden, mask
        attended, weights = self.attention(
            self.query_norm(hidden), self.context_norm(context), context_mask, output_attentions
        )
        hidden = hidden + self.dropout(attended)
        hidden = hidden + self.dropout(self.mlp(self.mlp_norm(hidden)))
        return hidden, weights


class AVEmotionCrossModalLayer(nn.Module):
    """One bidirectional cross-attention layer: audio queries attend to video, video queries attend to audio,
    both computed from the layer's input sequences."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__()
        self.audio_to_video = AVEmotionAttentionBlock(config)
        self.video_to_audio = AVEmotionAttentionBlock(config)

    def forward(self, audio, audio_mask, video, video_mask, output_attentions=False):
        new_audio, a2v = self.audio_to_video(audio, audio_mask, video, video_mask, output_attentions)
        new_video, v2a = self.video_to_audio(video, video_mask, audio, audio_mask, output_attentions)
        return new_audio, new_video, a2v, v2a


class AVEmotionJointLayer(nn.Module):
    """One layer of the joint multimodal transformer (Waligora et al., 2024): each of the audio, video and joint
    streams runs self-attention, then attends to the other two streams."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__()
        self.self_blocks = nn.ModuleList([AVEmotionAttentionBlock(config) for _ in range(3)])
        self.cross_blocks = nn.ModuleList([AVEmotionAttentionBlock(config) for _ in range(3)])

    def forward(self, streams, masks, output_attentions=False):
        """streams: (audio [B,1+N,D], video [B,1+T,D], joint [B,1+T,D]) with bool masks of the same lengths."""
        streams = [block(s, m)[0] for block, s, m in zip(self.self_blocks, streams, masks)]
        updated, weights = [], []
        for i, block in enumerate(self.cross_blocks):
            others = [j for j in range(3) if j != i]
            context = torch.cat([streams[j] for j in others], dim=1)
            context_mask = torch.cat([masks[j] for j in others], dim=1)
            hidden, w = block(streams[i], masks[i], context, context_mask, output_attentions)
            updated.append(hidden)
            weights.append(w)
        return updated, weights


class AVEmotionPreTrainedModel(PreTrainedModel):
    config: AVEmotionConfig
    config_class = AVEmotionConfig
    base_model_prefix = "avemotion"
    main_input_name = "pixel_values"
    input_modalities = ("video", "audio")
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_attention_backend = True
    _no_split_modules = ["AVEmotionAttentionBlock"]

    # Written into config.json's auto_map by save_pretrained, with this file and the config file beside it.
    _auto_class = "AutoModel"
    _remote_auto_map = {
        "AutoConfig": "configuration_avemotion.AVEmotionConfig",
        "AutoModel": "modeling_avemotion.AVEmotionForAudioVisualClassification",
        "AutoModelForVideoClassification": "modeling_avemotion.AVEmotionForAudioVisualClassification",
    }

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AVEmotionModel):
            if module.audio_layer_weights is not None:
                init.zeros_(module.audio_layer_weights)
            for name in ("video_null_token", "audio_null_token", "joint_null_token", "frame_position_embeddings"):
                if getattr(module, name, None) is not None:
                    init.normal_(getattr(module, name), mean=0.0, std=0.02)
        if isinstance(module, AVEmotionForAudioVisualClassification) and module.fusion_logit_weights is not None:
            init.zeros_(module.fusion_logit_weights)
        if isinstance(module, SpeechStatisticsHead):
            init.zeros_(module.feature_mean)
            init.ones_(module.feature_std)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # custom_object_save adds only `_auto_class`; the full map also lets AutoModelForVideoClassification
        # and AutoConfig resolve the remote code.
        self.config.auto_map = dict(self._remote_auto_map)
        return super().save_pretrained(save_directory, *args, **kwargs)


def build_vision_encoder(vision_config) -> PreTrainedModel:
    """Instantiate the frame encoder for any vision config; drops an unused pooling layer where the class has one
    (unused parameters break distributed training)."""
    model_class = MODEL_MAPPING[type(vision_config)]
    kwargs = {}
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        kwargs["add_pooling_layer"] = False
    return model_class(vision_config, **kwargs)


def whisper_encode(encoder: WhisperEncoder, input_features: torch.Tensor) -> list[torch.Tensor]:
    """Whisper's encoder on a clip's own frames: input_features [B,M,F] (F <= 3000, 100 frames/s) -> the
    embeddings and every layer's output, L+1 tensors [B,ceil(F/2),D] (the last one after the final layer norm).

    The stock `WhisperEncoder.forward` insists on 3000 frames (30 s): a 4 s clip would be 87 % padding. Here the
    convolutions and layers run on the real frames only and the sinusoidal position table is sliced to their
    length; tests check that predictions match the padded form on real clips."""
    hidden = F.gelu(encoder.conv2(F.gelu(encoder.conv1(input_features)))).permute(0, 2, 1)
    if hidden.shape[1] > encoder.embed_positions.num_embeddings:
        raise ValueError(f"Whisper takes at most {2 * encoder.embed_positions.num_embeddings} mel frames (30 s), "
                         f"got {input_features.shape[-1]}")
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
    hidden = F.dropout(hidden, p=encoder.dropout, training=encoder.training)
    states = [hidden]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
        states.append(hidden)
    states[-1] = encoder.layer_norm(hidden)
    return states


def build_audio_encoder(audio_config) -> PreTrainedModel:
    """AST model, or only the encoder half of Whisper (the decoder is never used)."""
    if audio_config.model_type == "whisper":
        return WhisperEncoder(audio_config)
    return AutoModel.from_config(audio_config)


def ast_token_grid(audio_config) -> tuple[int, int]:
    """(frequency, time) size of the AST patch grid for `audio_config.max_length` frames."""
    frequency = (audio_config.num_mel_bins - audio_config.patch_size) // audio_config.frequency_stride + 1
    time = (audio_config.max_length - audio_config.patch_size) // audio_config.time_stride + 1
    return frequency, time


class AVEmotionModel(AVEmotionPreTrainedModel):
    """Encoders + fusion -> pooled clip embedding ([`AVEmotionModelOutput`])."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__(config)
        size = config.fusion_hidden_size
        fusion = config.fusion_type
        self.vision_encoder = self.audio_encoder = None
        self.video_null_token = self.audio_null_token = self.joint_null_token = None
        self.frame_position_embeddings = self.audio_layer_weights = None
        if config.uses_video:
            self.vision_encoder = build_vision_encoder(config.vision_config)
            self.video_projection = nn.Linear(config.frame_embedding_size, size)
            self.frame_position_embeddings = nn.Parameter(torch.zeros(1, config.num_frames, size))
            self.video_norm = nn.LayerNorm(size)
            self.video_null_token = nn.Parameter(torch.zeros(1, 1, size))
        if config.uses_audio:
            self.audio_encoder = build_audio_encoder(config.audio_config)
            if config.audio_layer_pooling == "weighted":
                self.audio_layer_weights = nn.Parameter(torch.zeros(config.audio_config.encoder_layers + 1))
            self.audio_projection = nn.Linear(config.audio_config.hidden_size, size)
            self.audio_norm = nn.LayerNorm(size)
            self.audio_null_token = nn.Parameter(torch.zeros(1, 1, size))
        if fusion == "cross_attention":
            self.fusion_layers = nn.ModuleList([AVEmotionCrossModalLayer(config) for _ in range(config.fusion_num_layers)])
        elif fusion == "joint_transformer":
            self.joint_projection = nn.Linear(2 * size, size)
            self.joint_null_token = nn.Parameter(torch.zeros(1, 1, size))
            self.fusion_layers = nn.ModuleList([AVEmotionJointLayer(config) for _ in range(config.fusion_num_layers)])
        elif fusion == "concat":
            self.concat_mlp = nn.Sequential(nn.Linear(2 * size, 2 * size), nn.GELU(), nn.Dropout(config.fusion_dropout))
        self.post_init()

    @property
    def pooled_size(self) -> int:
        size = self.config.fusion_hidden_size
        return {"joint_transformer": 3 * size, "audio_only": size, "video_only": size}.get(self.config.fusion_type, 2 * size)

    def embed_frames(self, pixel_values, video_mask):
        """Vision encoder: pixel_values [B,T,3,H,W], video_mask bool [B,T] -> frame embeddings [B,T,Dv]
        (zeros for missing frames; Dv = `config.frame_embedding_size`). Only frames that exist go through the
        encoder, in one batched call."""
        batch, num_frames = pixel_values.shape[:2]
        frame_embeds = pixel_values.new_zeros(batch, num_frames, self.config.frame_embedding_size)
        if video_mask.any():
            encoded = self.vision_encoder(pixel_values=pixel_values[video_mask]).last_hidden_state
            pooled = {"cls": lambda: encoded[:, 0], "mean": lambda: encoded.mean(1),
                      "cls_mean": lambda: torch.cat([encoded[:, 0], encoded[:, 1:].mean(1)], -1),
                      }[self.config.vision_pooling]()
            frame_embeds = frame_embeds.index_put((video_mask,), pooled.to(frame_embeds.dtype))
        return frame_embeds

    def _audio_patch_masks(self, frame_mask):
        """Spectrogram frame mask [B,F] -> (time-patch validity [B,t], patch validity [B,f*t], has_audio [B]).
        A patch is valid when its first spectrogram frame is a real (unpadded) frame."""
        frequency, time = ast_token_grid(self.config.audio_config)
        valid_frames = frame_mask.sum(-1, keepdim=True)  # [B,1]
        time_start = torch.arange(time, device=frame_mask.device) * self.config.audio_config.time_stride
        time_valid = time_start[None, :] < valid_frames
        patch_valid = time_valid[:, None, :].expand(-1, frequency, time).reshape(frame_mask.shape[0], -1)
        return time_valid, patch_valid, valid_frames[:, 0] > 0

    def embed_audio(self, input_values, frame_mask, statistics_mask=None, with_statistics=False):
        """Audio encoder. Whisper: input_values [B,F,M] -> states [B,ceil(F/2),Da] (the last layer, or the learned
        weighted sum of all layers); the encoder sees every frame (as Whisper was trained: it pads with silence, no
        mask) and padding is masked afterwards, in the fusion. With ``with_statistics`` (Whisper only) the speech head's
        per-layer statistics over the frames of ``statistics_mask`` [B,F] (default ``frame_mask``) come too, from the
        same encoder pass: (states, [B,L+1,2Da]).
        AST: input_values [B,F,M], frame_mask bool [B,F] -> token states [B,2+f*t,Da]. Padded patches
        are hidden from attention inside AST; the 2 special tokens always attend."""
        if self.config.audio_is_whisper:
            layers = torch.stack(whisper_encode(self.audio_encoder, input_values.transpose(1, 2)), dim=1)  # [B,L+1,N,D]
            if self.config.audio_layer_pooling == "last":
                states = layers[:, -1]
            else:
                weights = torch.softmax(self.audio_layer_weights, 0).to(layers.dtype)
                states = torch.einsum("l,blnd->bnd", weights, layers)
            if not with_statistics:
                return states
            mask = statistics_mask if statistics_mask is not None else frame_mask
            return states, layer_statistics(layers, whisper_token_mask(mask, layers.shape[2]))
        _, patch_valid, _ = self._audio_patch_masks(frame_mask)
        encoder_mask = torch.cat([patch_valid.new_ones(patch_valid.shape[0], 2), patch_valid], dim=1)
        return self.audio_encoder(input_values=input_values, attention_mask=encoder_mask.long()).last_hidden_state

    def video_tokens(self, frame_embeds, video_mask):
        """frame_embeds [B,T,Dv], video_mask [B,T] -> frame tokens [B,1+T,D] (null token first), mask [B,1+T]."""
        batch, num_frames = frame_embeds.shape[:2]
        if num_frames > self.config.num_frames:
            raise ValueError(f"got {num_frames} frames; this model takes at most "
                             f"config.num_frames={self.config.num_frames}")
        tokens = self.video_projection(frame_embeds) + self.frame_position_embeddings[:, :num_frames]
        tokens = torch.cat([self.video_null_token.expand(batch, -1, -1), self.video_norm(tokens)], dim=1)
        return tokens, torch.cat([video_mask.new_ones(batch, 1), video_mask], dim=1)

    def audio_tokens(self, audio_states, frame_mask):
        """audio_states [B,N,Da] (AST: N = 2+f*t), frame_mask [B,F] -> audio tokens [B,1+N,D] (null token first),
        token mask [B,1+N], time-aligned features [B,t,D] (AST: mean over frequency patches; zero where padded)."""
        batch = audio_states.shape[0]
        if self.config.audio_is_whisper:  # token n covers frames 2n-1..2n+1 (conv2 has stride 2)
            time_valid = frame_mask[:, ::2][:, : audio_states.shape[1]]
            hidden = self.audio_norm(self.audio_projection(audio_states))
            tokens = torch.cat([self.audio_null_token.expand(batch, -1, -1), hidden], dim=1)
            token_mask = torch.cat([time_valid.new_ones(batch, 1), time_valid], dim=1)
            return tokens, token_mask, hidden * time_valid[..., None].to(hidden.dtype)
        frequency, time = ast_token_grid(self.config.audio_config)
        time_valid, patch_valid, has_audio = self._audio_patch_masks(frame_mask)
        hidden = self.audio_norm(self.audio_projection(audio_states))
        token_mask = torch.cat([has_audio.new_ones(batch, 1), has_audio[:, None].expand(batch, 2), patch_valid], 1)
        tokens = torch.cat([self.audio_null_token.expand(batch, -1, -1), hidden], dim=1)
        by_time = hidden[:, -frequency * time:].reshape(batch, frequency, time, -1).mean(1)
        return tokens, token_mask, by_time * time_valid[..., None].to(by_time.dtype)

    def _normalise_masks(self, pixel_values, input_values, video_mask, audio_mask, frame_embeds, audio_states):
        """Default masks (all present) and validation; audio_mask [B] or [B,F] -> frame mask [B,F]."""
        video_input = pixel_values if pixel_values is not None else frame_embeds
        audio_input = input_values if input_values is not None else audio_states
        reference = video_input if video_input is not None else audio_input
        if reference is None:
            raise ValueError("give pixel_values and/or input_values")
        batch, device = reference.shape[0], reference.device
        if self.config.uses_video:
            if video_input is None:
                raise ValueError(f"fusion_type={self.config.fusion_type!r} needs pixel_values [B,T,3,H,W]")
            if pixel_values is not None and pixel_values.dim() != 5:
                raise ValueError(f"pixel_values must be [B,T,3,H,W], got shape {tuple(pixel_values.shape)}")
            if video_input.shape[1] > self.config.num_frames:
                raise ValueError(f"got {video_input.shape[1]} frames; this model takes at most "
                                 f"config.num_frames={self.config.num_frames}")
            video_mask = (torch.ones(video_input.shape[:2], dtype=torch.bool, device=device)
                          if video_mask is None else video_mask.to(device=device, dtype=torch.bool))
            if video_mask.shape != video_input.shape[:2]:
                raise ValueError(f"video_mask must be [B,T]={tuple(video_input.shape[:2])}, got {tuple(video_mask.shape)}")
        if self.config.uses_audio:
            if audio_input is None:
                raise ValueError(f"fusion_type={self.config.fusion_type!r} needs input_values [B,frames,mel]")
            if input_values is not None and input_values.dim() != 3:
                raise ValueError(f"input_values must be [B,frames,mel], got shape {tuple(input_values.shape)}")
            if audio_input.shape[0] != batch:
                raise ValueError(f"the video inputs have {batch} rows but the audio inputs {audio_input.shape[0]}")
            frames = (input_values.shape[1] if input_values is not None
                      else 2 * audio_states.shape[1] if self.config.audio_is_whisper
                      else self.config.audio_config.max_length)
            if audio_mask is None:
                audio_mask = torch.ones(batch, frames, dtype=torch.bool, device=device)
            audio_mask = audio_mask.to(device=device, dtype=torch.bool)
            if audio_mask.shape == (batch,):
                audio_mask = audio_mask[:, None].expand(batch, frames)
            if audio_mask.shape != (batch, frames):
                raise ValueError(f"audio_mask must be [B] or [B,frames]={(batch, frames)}, got {tuple(audio_mask.shape)}")
        return video_mask, audio_mask

    def _modality_dropout(self, video_mask, audio_mask):
        """In training, drop a whole modality of a row with probability `config.modality_dropout` each, never both."""
        p = self.config.modality_dropout
        if not (self.training and p > 0 and self.config.uses_video and self.config.uses_audio):
            return video_mask, audio_mask
        draw = torch.rand(video_mask.shape[0], device=video_mask.device)
        has_video, has_audio = video_mask.any(-1), audio_mask.any(-1)
        drop_video = (draw < p) & has_audio
        drop_audio = (draw >= p) & (draw < 2 * p) & has_video
        return video_mask & ~drop_video[:, None], audio_mask & ~drop_audio[:, None]

    def forward(self, pixel_values=None, input_values=None, video_mask=None, audio_mask=None,
                output_attentions=False, frame_embeds=None, audio_states=None, audio_frame_mask=None,
                audio_layer_statistics=None, **kwargs) -> AVEmotionModelOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(B, T, 3, H, W)`): face frames (processor output).
        input_values (`torch.FloatTensor` of shape `(B, F, M)`): AST log-mel features.
        video_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): frames that exist.
        audio_mask (`torch.BoolTensor` of shape `(B,)` or `(B, F)`, *optional*): rows (or frames) that have audio.
        frame_embeds (`torch.FloatTensor` of shape `(B, T, Dv)`, *optional*): cached output of `embed_frames`,
            used instead of `pixel_values` (frozen-backbone training).
        audio_states (`torch.FloatTensor` of shape `(B, 2+P, Da)`, *optional*): cached output of `embed_audio`,
            used instead of `input_values` (with `config.modality_heads`, together with the cached
            `audio_layer_statistics` [B,L+1,2Da]).
        audio_frame_mask (`torch.BoolTensor` of shape `(B, F)`, *optional*): spectrogram frames that hold audio rather
            than padding (processor output): what the speech head's statistics cover (default: the audio mask).
        """
        video_mask, frame_mask = self._normalise_masks(pixel_values, input_values, video_mask, audio_mask,
                                                       frame_embeds, audio_states)
        fusion = self.config.fusion_type
        video = audio = None
        # encoders see the true masks; modality dropout acts on what the fusion sees
        if self.config.uses_video and frame_embeds is None:
            frame_embeds = self.embed_frames(pixel_values, video_mask)
        if self.config.uses_audio and audio_states is None:
            if self.config.modality_heads:
                audio_states, audio_layer_statistics = self.embed_audio(input_values, frame_mask, audio_frame_mask,
                                                                        with_statistics=True)
            else:
                audio_states = self.embed_audio(input_values, frame_mask)
        video_mask, frame_mask = self._modality_dropout(video_mask, frame_mask)
        if self.config.uses_video:
            video, video_token_mask = self.video_tokens(frame_embeds, video_mask)
        if self.config.uses_audio:
            audio, audio_token_mask, audio_by_time = self.audio_tokens(audio_states, frame_mask)
        a2v = v2a = ()
        if fusion == "cross_attention":
            for layer in self.fusion_layers:
                audio, video, w_av, w_va = layer(audio, audio_token_mask, video, video_token_mask, output_attentions)
                a2v, v2a = a2v + (w_av,), v2a + (w_va,)
        elif fusion == "joint_transformer":
            joint, joint_mask = self._joint_stream(video, video_token_mask, audio_by_time, frame_mask)
            streams, masks = [audio, video, joint], [audio_token_mask, video_token_mask, joint_mask]
            for layer in self.fusion_layers:
                streams, weights = layer(streams, masks, output_attentions)
                if output_attentions:  # keys of audio queries are [video; joint]; of video queries [audio; joint]
                    a2v += (weights[0][..., : video.shape[1]],)
                    v2a += (weights[1][..., : audio.shape[1]],)
            audio, video, joint = streams

        audio_embeds = masked_mean(audio, audio_token_mask) if audio is not None else None
        video_embeds = masked_mean(video, video_token_mask) if video is not None else None
        if fusion == "audio_only":
            pooled = audio_embeds
        elif fusion == "video_only":
            pooled = video_embeds
        elif fusion == "joint_transformer":
            pooled = torch.cat([audio_embeds, video_embeds, masked_mean(joint, joint_mask)], dim=-1)
        elif fusion == "concat":
            pooled = self.concat_mlp(torch.cat([audio_embeds, video_embeds], dim=-1))
        else:
            pooled = torch.cat([audio_embeds, video_embeds], dim=-1)
        return AVEmotionModelOutput(
            pooled_output=pooled, audio_embeds=audio_embeds, video_embeds=video_embeds,
            audio_hidden_states=audio, video_hidden_states=video,
            audio_to_video_attentions=a2v if output_attentions and a2v else None,
            video_to_audio_attentions=v2a if output_attentions and v2a else None,
            video_mask=video_mask, audio_mask=frame_mask.any(-1) if frame_mask is not None else None,
            frame_embeds=frame_embeds, audio_states=audio_states, audio_frame_mask=frame_mask,
            audio_layer_statistics=audio_layer_statistics,
        )

    def _joint_stream(self, video, video_token_mask, audio_by_time, frame_mask):
        """Joint stream: per frame, [video token; audio features resampled to that frame's time] -> linear.
        Returns tokens [B,1+T,D] (null token first) and mask [B,1+T]."""
        frames = video[:, 1:]
        audio_at_frames = F.adaptive_avg_pool1d(audio_by_time.transpose(1, 2), frames.shape[1]).transpose(1, 2)
        joint = self.joint_projection(torch.cat([frames, audio_at_frames], dim=-1))
        joint_mask = video_token_mask[:, 1:] | frame_mask.any(-1, keepdim=True)
        batch = video.shape[0]
        joint = torch.cat([self.joint_null_token.expand(batch, -1, -1), joint], dim=1)
        return joint, torch.cat([joint_mask.new_ones(batch, 1), joint_mask], dim=1)


def concordance_correlation(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Concordance correlation coefficient per column of predictions/targets [B,K] -> [K]."""
    pred_mean, target_mean = predictions.mean(0), targets.mean(0)
    pred_var, target_var = predictions.var(0, unbiased=False), targets.var(0, unbiased=False)
    covariance = ((predictions - pred_mean) * (targets - target_mean)).mean(0)
    return 2 * covariance / (pred_var + target_var + (pred_mean - target_mean) ** 2 + 1e-8)


class AVEmotionForAudioVisualClassification(AVEmotionPreTrainedModel):
    """[`AVEmotionModel`] + a classification (or regression) head. `late` fusion has one head per modality and
    averages their logits with learned weights. With `config.modality_heads` the model also carries the unimodal
    models' own heads (a face classifier per frame, a speech head over time; see [`AVEmotionConfig`])."""

    def __init__(self, config: AVEmotionConfig):
        super().__init__(config)
        self.avemotion = AVEmotionModel(config)
        size = config.fusion_hidden_size
        self.fusion_logit_weights = None
        if config.modality_heads:  # the same layers, and state-dict layout, as the face and speech models' heads
            audio_size = config.audio_config.d_model
            self.face_classifier = nn.Linear(config.frame_embedding_size, config.num_labels)
            self.speech_head = SpeechStatisticsHead(config.audio_config.encoder_layers + 1, audio_size,
                                                    config.num_labels, config.fusion_dropout)
        if config.fusion_type == "late":
            if not config.modality_heads:
                self.audio_classifier = self._head(size)
                self.video_classifier = self._head(size)
            self.fusion_logit_weights = nn.Parameter(torch.zeros(2))
        else:
            self.classifier = self._head(self.avemotion.pooled_size)
        self.post_init()

    def _head(self, in_size):
        return nn.Sequential(nn.LayerNorm(in_size), nn.Dropout(self.config.fusion_dropout),
                             nn.Linear(in_size, self.config.num_labels))

    def modality_log_probs(self, outputs: AVEmotionModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """The unimodal heads (`config.modality_heads`) on the encoders' outputs -> (audio, video) log-probabilities
        [B,num_labels] each. Video: the face classifier on every present frame, probabilities averaged over them
        (uniform for a row without frames). Audio: the speech model's head on the per-layer statistics of the
        Whisper states (`outputs.audio_layer_statistics`, padding left out; uniform for a row without audio)."""
        frames = outputs.video_mask.to(outputs.frame_embeds.dtype)  # [B,T]
        face = torch.softmax(self.face_classifier(outputs.frame_embeds), -1)  # [B,T,L]
        video = (face * frames[..., None]).sum(1) / frames.sum(1, keepdim=True).clamp(min=1)
        video = torch.where(frames.sum(1, keepdim=True) > 0, video, torch.full_like(video, 1 / video.shape[-1]))
        audio = torch.log_softmax(self.speech_head(outputs.audio_layer_statistics), -1)
        audio = torch.where(outputs.audio_mask[:, None], audio, torch.full_like(audio, -math.log(audio.shape[-1])))
        return audio, video.clamp(min=1e-8).log()

    def fuse_modality_probs(self, audio_logits, video_logits, has_audio, has_video):
        """Late fusion of the unimodal heads: log of the weighted average of the present modalities' probabilities
        [B,L], and the weights [B,2] (audio, video). Labels the face cannot know (`config.video_merged_labels`) get
        the face's probability of what they stand for, split in the voice's proportion."""
        audio, video = audio_logits.exp(), video_logits.exp().clone()
        for label, stands_for in (self.config.video_merged_labels or {}).items():
            i, j = self.config.label2id[label], self.config.label2id[stands_for]
            share = audio[:, i] / (audio[:, i] + audio[:, j]).clamp(min=1e-8)
            share = torch.where(has_audio, share, torch.zeros_like(share))
            total = video[:, i] + video[:, j]
            video[:, i], video[:, j] = total * share, total * (1 - share)
        present = torch.stack([has_audio, has_video], dim=-1)  # [B,2]
        present = present | ~present.any(-1, keepdim=True)  # a row with neither keeps both weights
        prior = (torch.softmax(self.fusion_logit_weights, 0) if self.fusion_logit_weights is not None
                 else audio.new_full((2,), 0.5))  # a cross-attention model: the two heads count equally
        weights = prior * present.to(audio.dtype)
        weights = weights / weights.sum(-1, keepdim=True)
        fused = weights[:, :1] * audio + weights[:, 1:] * video
        return fused.clamp(min=1e-8).log(), weights

    @classmethod
    def from_backbones(cls, vision=None, audio=None, freeze_backbones=False, audio_max_length=None,
                       **config_kwargs):
        """Build a model whose encoders load pretrained checkpoints (Hub names or local folders) and whose fusion
        head starts from scratch.

        Args:
            vision: checkpoint of the frame encoder (e.g. `google/vit-base-patch16-224-in21k`,
                `facebook/dinov2-small`, or `hf_avemotion.pretrained_path("dinov2-small")`); None = random init.
            audio: AST checkpoint (e.g. `MIT/ast-finetuned-audioset-10-10-0.4593`) or Whisper checkpoint
                (`openai/whisper-base`; only its encoder is kept); None = random init.
            freeze_backbones: keep encoder weights fixed (requires_grad False).
            audio_max_length: AST only: spectrogram frames per clip; when it differs from the checkpoint's
                `max_length` the AST time position embeddings are interpolated (3-4 s clips need ~400 of the usual
                1024 frames). Whisper needs no such setting: it runs on the clip's own frames.
            **config_kwargs: any other [`AVEmotionConfig`] field.
        """
        pretrained = {}
        if vision is not None:
            config_kwargs["vision_config"] = AutoConfig.from_pretrained(vision)
            pretrained["vision"] = AutoModel.from_pretrained(vision)
        if audio is not None:
            config_kwargs["audio_config"] = AutoConfig.from_pretrained(audio)
            pretrained["audio"] = AutoModel.from_pretrained(audio)
        config = AVEmotionConfig(**config_kwargs)
        source_audio_config = config.audio_config
        if audio_max_length is not None and not config.audio_is_whisper:
            config.audio_config = type(source_audio_config)(**{**source_audio_config.to_dict(),
                                                              "max_length": audio_max_length})
        model = cls(config)
        if "vision" in pretrained and model.avemotion.vision_encoder is not None:
            load_encoder_weights(model.avemotion.vision_encoder, pretrained["vision"].state_dict(), "vision")
        if "audio" in pretrained and model.avemotion.audio_encoder is not None and config.audio_is_whisper:
            load_encoder_weights(model.avemotion.audio_encoder, pretrained["audio"].get_encoder().state_dict(), "audio")
        elif "audio" in pretrained and model.avemotion.audio_encoder is not None:
            state = pretrained["audio"].state_dict()
            key = "embeddings.position_embeddings"
            state[key] = interpolate_ast_positions(state[key], source_audio_config, config.audio_config)
            load_encoder_weights(model.avemotion.audio_encoder, state, "audio")
        if freeze_backbones:
            model.freeze_backbones()
        return model

    def freeze_backbones(self, frozen: bool = True):
        """Stop (or restart) training the pretrained encoders; only the fusion head and classifier learn."""
        for encoder in (self.avemotion.vision_encoder, self.avemotion.audio_encoder):
            if encoder is not None:
                encoder.requires_grad_(not frozen)

    def forward(self, pixel_values=None, input_values=None, video_mask=None, audio_mask=None, labels=None,
                output_attentions=False, frame_embeds=None, audio_states=None, audio_frame_mask=None,
                audio_layer_statistics=None, return_dict=True, **kwargs) -> AVEmotionClassifierOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(B, T, 3, H, W)`), input_values (`torch.FloatTensor` of shape
        `(B, F, M)`), video_mask (`(B, T)`), audio_mask (`(B,)` or `(B, F)`), frame_embeds, audio_states: as in
        [`AVEmotionModel.forward`].
        audio_frame_mask (`torch.BoolTensor` of shape `(B, F)`, *optional*): spectrogram frames that hold audio
            rather than padding (processor output); only the speech head of `config.modality_heads` uses it (the
            fusion sees what `audio_mask` says), so its statistics cover the clip's own audio as the speech model's do.
        audio_layer_statistics (`torch.FloatTensor` of shape `(B, L+1, 2Da)`, *optional*): cached speech-head input,
            with cached `audio_states`.
        labels (`torch.LongTensor` of shape `(B,)`, or `torch.FloatTensor` of shape `(B, num_labels)` for
            regression): targets; the loss is returned when given.
        """
        outputs = self.avemotion(pixel_values, input_values, video_mask, audio_mask, output_attentions,
                                 frame_embeds=frame_embeds, audio_states=audio_states,
                                 audio_frame_mask=audio_frame_mask, audio_layer_statistics=audio_layer_statistics)
        audio_logits = video_logits = fusion_weights = None
        has_video = outputs.video_mask.any(-1) if outputs.video_mask is not None else None
        if self.config.modality_heads:
            audio_logits, video_logits = self.modality_log_probs(outputs)
        if self.config.fusion_type == "late" and self.config.modality_heads:
            logits, fusion_weights = self.fuse_modality_probs(audio_logits, video_logits, outputs.audio_mask, has_video)
        elif self.config.fusion_type == "late":
            audio_logits = self.audio_classifier(outputs.audio_embeds)
            video_logits = self.video_classifier(outputs.video_embeds)
            present = torch.stack([outputs.audio_mask, outputs.video_mask.any(-1)], dim=-1)  # [B,2]
            present = present | ~present.any(-1, keepdim=True)  # a row with neither keeps both weights
            fusion_weights = torch.softmax(self.fusion_logit_weights, 0) * present.to(audio_logits.dtype)
            fusion_weights = fusion_weights / fusion_weights.sum(-1, keepdim=True)
            logits = fusion_weights[:, :1] * audio_logits + fusion_weights[:, 1:] * video_logits
        else:
            logits = self.classifier(outputs.pooled_output)

        loss = None
        if labels is not None:
            loss = self.compute_loss(logits, labels)
            if self.config.fusion_type == "late" and self.config.late_fusion_aux_weight > 0:
                aux = (self.compute_loss(audio_logits[outputs.audio_mask], labels[outputs.audio_mask])
                       if outputs.audio_mask.any() else logits.new_zeros(()))
                has_video = outputs.video_mask.any(-1)
                aux = aux + (self.compute_loss(video_logits[has_video], labels[has_video])
                             if has_video.any() else logits.new_zeros(()))
                loss = loss + self.config.late_fusion_aux_weight * aux
        return AVEmotionClassifierOutput(
            loss=loss, logits=logits, audio_logits=audio_logits, video_logits=video_logits,
            fusion_weights=fusion_weights, pooled_output=outputs.pooled_output,
            audio_embeds=outputs.audio_embeds, video_embeds=outputs.video_embeds,
            audio_to_video_attentions=outputs.audio_to_video_attentions,
            video_to_audio_attentions=outputs.video_to_audio_attentions,
        )

    def compute_loss(self, logits, labels):
        """Cross-entropy (class weights, label smoothing) or, for `problem_type="regression"`, 1 - mean CCC."""
        if self.config.problem_type == "regression":
            targets = labels.to(logits.dtype).view_as(logits)
            return (1.0 - concordance_correlation(logits, targets)).mean()
        weight = None
        if self.config.class_weights is not None:
            weight = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, labels.long(), weight=weight, label_smoothing=self.config.label_smoothing)


def whisper_token_mask(frame_mask: torch.Tensor | None, num_tokens: int) -> torch.Tensor | None:
    """Spectrogram-frame mask [B,F] (True = real audio) -> Whisper token mask [B,N] (token n covers frames 2n and
    2n+1: the encoder's second convolution has stride 2); the first token always counts, so a row of silence still
    pools something."""
    if frame_mask is None:
        return None
    mask = frame_mask[:, ::2][:, :num_tokens].to(torch.bool).clone()
    mask[:, 0] = True
    return mask


def layer_statistics(layer_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and standard deviation over time of every layer's states: layer_states [B,L+1,N,D] (+ bool token_mask
    [B,N], True = real audio) -> [B,L+1,2D]."""
    if token_mask is None:
        token_mask = layer_states.new_ones(layer_states.shape[0], layer_states.shape[2], dtype=torch.bool)
    weights = token_mask.to(layer_states.dtype)
    weights = (weights / weights.sum(-1, keepdim=True).clamp(min=1))[:, None, :, None]  # [B,1,N,1]
    mean = (weights * layer_states).sum(2)
    variance = (weights * layer_states.square()).sum(2) - mean.square()
    return torch.cat([mean, variance.clamp(min=0).sqrt()], dim=-1)


class SpeechStatisticsHead(nn.Module):
    """The speech head: per-layer statistics [B,L+1,2D] (`layer_statistics` of Whisper's hidden states) ->
    logits [B,C]. The statistics of all layers are concatenated, standardised with the training set's per-feature
    mean and deviation (buffers, set by training), layer-normalised and classified by one linear layer.

    Why this head: on RAVDESS (5 subject-wise folds, frozen Whisper base) a linear read-out of every layer's
    mean + std beat a learned weighted sum of the layers followed by attentive pooling and an MLP (0.756 vs 0.664
    accuracy; docs/speech_model.md): emotion is spread over the layers differently for each statistic, and a few
    thousand training clips favour the simplest read-out."""

    def __init__(self, num_layers: int, width: int, num_labels: int, dropout: float):
        super().__init__()
        size = num_layers * 2 * width
        self.register_buffer("feature_mean", torch.zeros(size))
        self.register_buffer("feature_std", torch.ones(size))
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(size, num_labels)

    @torch.no_grad()
    def set_feature_scale(self, statistics: torch.Tensor) -> None:
        """Standardise with these training statistics [n,L+1,2D]."""
        flat = statistics.flatten(1).to(self.feature_mean.dtype)
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp(min=1e-5))

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        x = (statistics.flatten(1) - self.feature_mean) / self.feature_std
        return self.classifier(self.dropout(self.norm(x)))


class AVEmotionForSpeechClassification(PreTrainedModel):
    """Speech emotion classifier: Whisper's encoder (on the clip's own frames, see `whisper_encode`; frozen), the
    mean and standard deviation over time of each of its L+1 hidden states (padding left out), and a linear read-out
    of all of them ([`SpeechStatisticsHead`]).

    Loads with `AutoModelForAudioClassification` and runs in `pipeline("audio-classification")`, whose Whisper
    feature extractor (``chunk_length`` seconds, ``return_attention_mask``) gives ``input_features`` [B,M,F] and
    ``attention_mask`` [B,F]."""

    config: AVEmotionSpeechConfig
    config_class = AVEmotionSpeechConfig
    base_model_prefix = "speech"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    _auto_class = "AutoModelForAudioClassification"
    _remote_auto_map = {
        "AutoConfig": "configuration_avemotion.AVEmotionSpeechConfig",
        "AutoModelForAudioClassification": "modeling_avemotion.AVEmotionForSpeechClassification",
    }

    def __init__(self, config: AVEmotionSpeechConfig):
        super().__init__(config)
        self.encoder = WhisperEncoder(config.audio_config)
        self.head = SpeechStatisticsHead(config.audio_config.encoder_layers + 1, config.audio_config.d_model,
                                         config.num_labels, config.classifier_dropout)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SpeechStatisticsHead):
            init.zeros_(module.feature_mean)
            init.ones_(module.feature_std)

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = dict(self._remote_auto_map)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_backbone(cls, audio, **config_kwargs) -> "AVEmotionForSpeechClassification":
        """Whisper checkpoint (Hub name or folder, e.g. `hf_avemotion.pretrained_path("whisper-base")`) +
        a new head; ``config_kwargs`` are [`AVEmotionSpeechConfig`] fields (labels, dropout, ...)."""
        model = cls(AVEmotionSpeechConfig(audio_config=AutoConfig.from_pretrained(audio), **config_kwargs))
        load_encoder_weights(model.encoder, AutoModel.from_pretrained(audio).get_encoder().state_dict(), "audio")
        return model

    def frozen_backbone_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of the weights training leaves as the backbone has them: the whole encoder."""
        return ("encoder.",)

    def statistics(self, input_features, attention_mask=None) -> torch.Tensor:
        """input_features [B,M,F] (+ attention_mask [B,F]) -> per-layer mean and std over the real frames
        [B,L+1,2D]."""
        states = torch.stack(whisper_encode(self.encoder, input_features), dim=1)  # [B,L+1,N,D]
        frames = input_features.shape[-1]
        if attention_mask is not None and attention_mask.shape[-1] > frames:
            # a per-sample mask: WhisperFeatureExtractor returns one when return_attention_mask comes from its saved
            # config rather than from the call (as in pipeline("audio-classification")); 1 frame = hop_length samples
            attention_mask = attention_mask[:, :: attention_mask.shape[-1] // frames][:, :frames]
        return layer_statistics(states, whisper_token_mask(attention_mask, states.shape[2]))

    def forward(self, input_features=None, attention_mask=None, labels=None, layer_statistics=None,
                return_dict=True, **kwargs) -> SequenceClassifierOutput:
        r"""
        input_features (`torch.FloatTensor` of shape `(B, M, F)`): Whisper log-mel features (F <= 3000).
        attention_mask (`torch.LongTensor` of shape `(B, F)`, *optional*): 1 for real frames; padded frames are left
            out of the statistics (the encoder itself sees all frames, as Whisper was trained).
        labels (`torch.LongTensor` of shape `(B,)` or `torch.FloatTensor` of shape `(B, num_labels)`, *optional*):
            class indices, or target distributions (soft labels).
        layer_statistics (`torch.FloatTensor` of shape `(B, L+1, 2D)`, *optional*): cached `statistics`, instead of
            `input_features` (training the head on a frozen encoder).
        """
        if layer_statistics is None:
            if input_features is None:
                raise ValueError("give input_features [B,M,F] (or cached layer_statistics)")
            if input_features.dim() != 3 or input_features.shape[1] != self.config.audio_config.num_mel_bins:
                raise ValueError(f"input_features must be [B,{self.config.audio_config.num_mel_bins},frames], "
                                 f"got {tuple(input_features.shape)}")
            layer_statistics = self.statistics(input_features, attention_mask)
        logits = self.head(layer_statistics)
        loss = None
        if labels is not None:
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
            loss = F.cross_entropy(logits, labels if labels.is_floating_point() else labels.long(), weight=weight,
                                   label_smoothing=self.config.label_smoothing)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_encoder_weights(encoder: nn.Module, state_dict: dict, name: str):
    """Load a pretrained encoder's weights, failing loudly on anything but an unused pooling layer."""
    missing, unexpected = encoder.load_state_dict(state_dict, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise ValueError(f"{name} checkpoint does not match the {name} encoder: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def interpolate_ast_positions(position_embeddings: torch.Tensor, source_config, target_config) -> torch.Tensor:
    """Resize AST position embeddings [1, 2+f*t, D] from `source_config.max_length` frames to
    `target_config.max_length` (linear interpolation along time; the 2 special tokens are kept)."""
    source_grid, target_grid = ast_token_grid(source_config), ast_token_grid(target_config)
    if source_grid == target_grid:
        return position_embeddings
    if source_grid[0] != target_grid[0]:
        raise ValueError(f"AST checkpoint has {source_config.num_mel_bins} mel bins but the model expects "
                         f"{target_config.num_mel_bins}; only the number of frames (max_length) can change")
    special, patches = position_embeddings[:, :2], position_embeddings[:, 2:]
    size = patches.shape[-1]
    grid = patches.reshape(1, source_grid[0], source_grid[1], size).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=target_grid, mode="bilinear", align_corners=False)
    return torch.cat([special, grid.permute(0, 2, 3, 1).reshape(1, -1, size)], dim=1)


__all__ = [
    "AVEmotionPreTrainedModel",
    "AVEmotionModel",
    "AVEmotionForAudioVisualClassification",
    "AVEmotionModelOutput",
    "AVEmotionClassifierOutput",
    "AVEmotionForSpeechClassification",
]
