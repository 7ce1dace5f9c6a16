"""
Video processor for EVA02-AT: take a video in any form, read its sampled frames, resize, center crop and normalise.

Reading and frame sampling are `video_reading_eva02at.py`'s (docs/data_formats.md): the clip [start, end) seconds
becomes the frame range s = round(start * fps), e = round(end * fps), cut into T equal segments; evaluation takes each
segment's midpoint, training shifts it within the segment. Datasets stored as chunk folders (AVION, LaViLa, EgoVLP)
are read by `modeling_eva02at.data.layouts`, which does not ship to the Hub.

transformers' `BaseVideoProcessor` needs torchvision, which cannot be installed next to the CPU torch wheels this
project targets, so this is a `BaseImageProcessor` that X-CLIP-style processors put in their `image_processor` slot.
"""

import difflib
import io
import os
import re

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, is_pil_image
from transformers.processing_utils import ImagesKwargs
from transformers.utils import is_vision_available, logging

from .video_reading_eva02at import (
    VIDEO_BACKENDS,
    VideoDecodeError,
    VideoInfo,
    frame_range_from_seconds,
    open_video,
    probe_video,
    sample_frame_indices,
    time_to_seconds,
)


logger = logging.get_logger(__name__)

# AVION's checkpoints were trained on 0-255 values with these statistics (docs/data_formats.md).
AVION_MEAN = (108.3273, 116.7460, 104.0937)
AVION_STD = (68.5005, 66.6322, 70.3232)
NORMALIZATION_PRESETS = {
    "clip": {"image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD), "do_rescale": True},
    "avion": {"image_mean": list(AVION_MEAN), "image_std": list(AVION_STD), "do_rescale": False},
}

PIXEL_SETTINGS = (
    "num_frames",
    "size",
    "crop_size",
    "do_resize",
    "do_center_crop",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)
"""Settings that change the pixels a model sees (part of every feature cache key and index header)."""
# Settings of the constructor (saved by save_pretrained) that a call may override, and the per-call arguments.
PROCESSOR_SETTINGS = (*PIXEL_SETTINGS, "video_backend", "num_threads")
CALL_ARGUMENTS = ("start", "end", "video_fps", "jitter", "seed", "generator", "return_tensors")

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]+://")
"""A URL's start (https://, s3://, ...): a string video that is a URL, not a path."""

# Still-image file signatures (leading bytes): an image file given as a video gets a clear error from every backend
# (decord fails with "broken metadata", PyAV reads it as a one-frame stream).
_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


class Eva02AtVideoProcessorKwargs(ImagesKwargs, total=False):
    """
    The keys `from_pretrained` passes on to the constructor (transformers' `from_dict` drops others), on top of the
    image processor ones. A call takes `Eva02AtVideoProcessor.call_keywords` only, the settings this processor uses.
    """

    num_frames: int
    normalization: str
    video_backend: str
    num_threads: int


# ---------------------------------------------------------------------------------------------------------------------
# Call arguments
# ---------------------------------------------------------------------------------------------------------------------


def check_keywords(given, valid, caller: str) -> None:
    """Raise TypeError for keywords that `caller` does not take, with the closest valid ones as a hint."""
    unknown = sorted(set(given) - set(valid))
    if not unknown:
        return
    hints = []
    for key in unknown:
        # difflib catches typos (num_frame); the word test catches short forms (fps -> video_fps).
        close = difflib.get_close_matches(key, valid, n=3) or [v for v in sorted(valid) if key in v.split("_")]
        if close:
            hints.append(" or ".join(repr(c) for c in close) + (f" for {key!r}" if len(unknown) > 1 else ""))
    what = "unexpected keyword arguments" if len(unknown) > 1 else "an unexpected keyword argument"
    raise TypeError(
        f"{caller} got {what} {', '.join(repr(key) for key in unknown)}."
        + (f" Did you mean {', '.join(hints)}?" if hints else "")
        + f" Valid keywords: {', '.join(sorted(valid))}"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------------------------------


def _is_frame(x) -> bool:
    return is_pil_image(x) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 3)


def _is_encoded(x) -> bool:
    return isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(x, "read")


def make_batched_videos(videos) -> list:
    """
    Turn the `videos` argument into a list with one entry per video.

    One video is a path, bytes, a file-like object, a (T, H, W, 3) / (T, 3, H, W) array or tensor, a list of frames
    (PIL images or (H, W, 3) / (3, H, W) arrays), or a single frame (a one-frame video). A list of videos, or a 5-D
    array, is a batch. A flat list of frames is always the frames of ONE video; a batch of one-frame videos is a list
    of one-frame lists, `[[image_a], [image_b]]`. A list that mixes frames with other videos is refused.
    """
    if videos is None:
        raise ValueError("videos must be given")
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        return [videos]
    if _is_encoded(videos) or is_pil_image(videos):
        return [videos]
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("videos is an empty list")
        is_frame = [_is_frame(video) for video in videos]
        if all(is_frame):
            return [videos]
        if any(is_frame):
            raise TypeError(
                f"videos mixes single frames (videos[{is_frame.index(True)}]) with videos "
                f"(videos[{is_frame.index(False)}]): a flat list of frames is one video; to batch one-frame videos, "
                f"wrap each in a list: videos=[[image_a], [image_b]]"
            )
        return list(videos)
    raise TypeError(f"unsupported video input of type {type(videos).__name__}")


def _image_format(header: bytes) -> str | None:
    """The still-image format whose signature starts `header`, or None."""
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for signature, fmt in _IMAGE_SIGNATURES.items() if header.startswith(signature)), None)


def _frames_to_array(video, name: str) -> np.ndarray | torch.Tensor:
    """Decoded frames given by the caller -> a (T, H, W, 3) array or tensor (uint8 or float, channels last)."""
    if _is_frame(video):
        video = [video]  # a single image is a one-frame video
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError(f"{name} is an empty list of frames")
        frames = [np.asarray(f.convert("RGB")) if is_pil_image(f) else np.asarray(f) for f in video]
        if any(f.shape != frames[0].shape for f in frames):
            raise ValueError(f"{name}: all frames must have the same size")
        video = np.stack(frames)
    if video.ndim != 4:
        raise ValueError(f"{name}: expected (T, H, W, 3) frames, got shape {tuple(video.shape)}")
    if video.shape[-1] != 3 and video.shape[1] == 3:
        video = video.permute(0, 2, 3, 1) if isinstance(video, torch.Tensor) else video.transpose(0, 2, 3, 1)
    if video.shape[-1] != 3:
        raise ValueError(f"{name}: expected 3 colour channels, got shape {tuple(video.shape)}")
    if video.shape[0] == 0:
        raise ValueError(f"{name} has no frames")
    return video


def _video_name(video, index: int) -> str:
    """How messages name a video: a file by its base name (never the server's folders), bytes by their size."""
    if isinstance(video, (str, os.PathLike)):
        return repr(os.path.basename(os.fspath(video)))
    if hasattr(video, "read"):
        name = getattr(video, "name", None)
        return repr(os.path.basename(str(name))) if name else f"videos[{index}] (file-like)"
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"videos[{index}] ({len(video)} bytes)"
    return f"videos[{index}]"


def per_video(value, batch_size: int, argument: str, parse=None) -> list:
    """
    Broadcast a scalar (or None) to every video, or check that a list has one entry per video; `parse(value, name)`
    converts each entry.
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != batch_size:
            raise ValueError(f"{argument} has {len(value)} entries for {batch_size} videos")
        values, names = list(value), [f"{argument}[{index}]" for index in range(batch_size)]
    else:
        values, names = [value] * batch_size, [argument] * batch_size
    return values if parse is None else [parse(value, name) for value, name in zip(values, names)]


def _normalization_preset(name: str) -> tuple[list[float], list[float], bool]:
    """(image_mean, image_std, do_rescale) of a named preset."""
    if name not in NORMALIZATION_PRESETS:
        raise ValueError(f"normalization must be one of {list(NORMALIZATION_PRESETS)}, got {name!r}")
    preset = NORMALIZATION_PRESETS[name]
    return list(preset["image_mean"]), list(preset["image_std"]), preset["do_rescale"]


def _square_size(value, argument: str) -> int:
    """Accept an int, or transformers' {"shortest_edge": n} / {"height": n, "width": n} dicts."""
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if value.get("height") == value.get("width") and value.get("height") is not None:
            return int(value["height"])
        raise ValueError(f"{argument} must be an int or a square size dict, got {value}")
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{argument} must be square, got {value}")
        return int(value[0])
    return int(value)


def _check_crop(size: int, crop_size: int, do_resize: bool, do_center_crop: bool) -> None:
    """A center crop larger than the resized short side cannot be cut: say so before any video is decoded."""
    if do_resize and do_center_crop and crop_size > size:
        raise ValueError(
            f"crop_size={crop_size} is larger than size={size} (the short side after resizing): pass a crop_size "
            f"<= size, or leave crop_size out so that it follows size"
        )


# ---------------------------------------------------------------------------------------------------------------------
# The processor
# ---------------------------------------------------------------------------------------------------------------------


class Eva02AtVideoProcessor(BaseImageProcessor):
    r"""
    Turns videos into EVA02-AT's `pixel_values_videos`: a float32 tensor (batch, num_frames, 3, crop_size, crop_size).

    Per video: decode, sample `num_frames` frames (docs/data_formats.md), resize the short side to `size` (bilinear with
    antialiasing, on uint8 frames as PIL-based CLIP preprocessing does), center crop `crop_size`, rescale to [0, 1]
    and normalise with the CLIP mean / std.

    Args:
        num_frames (`int`, defaults to 16): frames per video.
        size (`int`, defaults to 224): target of the short side (a `{"shortest_edge": n}` dict is accepted).
        crop_size (`int`, defaults to `size`): side of the square center crop. It follows `size` unless both are
            given: `from_pretrained(folder, size=160)` and a call with `size=160` crop 160 x 160, whatever crop_size
            was saved or set. With resizing and cropping on, crop_size may not exceed size.
        do_resize / do_center_crop / do_rescale / do_normalize (`bool`): switch the steps.
        rescale_factor (`float`, defaults to 1/255). Frames are expected as 0-255 values; float frames already in
            [0, 1] need `do_rescale=False` (a warning says so once, as transformers' image processors do; the
            frames are still rescaled as `do_rescale` says).
        image_mean / image_std (`list[float]`): per-channel statistics; CLIP's by default.
        normalization (`str`, *optional*): preset that sets image_mean / image_std / do_rescale: `"clip"`, or
            `"avion"` (AVION's statistics on 0-255 values, for checkpoints trained with them).
        video_backend (`str`, defaults to `"auto"`): `"decord"`, `"pyav"`, or `"auto"` (decord when importable).
        num_threads (`int`, defaults to 1): decoder threads per video. 1 suits DataLoader workers (one video per
            core); 0 lets the decoder pick (faster for a single process).

    Call arguments (besides overrides of the above): `start` / `end` (per video or shared; a clip inside a long video:
    seconds as a number or a string, `"MM:SS.ff"` or EPIC-Kitchens' `"HH:MM:SS.ff"`), `video_fps` (frame rate for
    start/end of decoded frame arrays, or to override the file's), `jitter` (training-time sampling), `seed` or
    `generator` (a `numpy.random.Generator`) for reproducible jitter, and `return_tensors` (`"pt"` default, `"np"` or
    None for numpy). Any other keyword raises TypeError.

    A video is a path to a file, bytes, a binary file-like object, a
    (T, H, W, 3) or (T, 3, H, W) array / tensor of 0-255 values (uint8 or float), a list of PIL images or
    (H, W, 3) frames, or a single PIL image / (H, W, 3) frame (a one-frame video, its frame repeated `num_frames`
    times). A list of videos is a batch (videos may differ in length and size); a flat list of frames is one video,
    so a batch of images is written `[[image_a], [image_b]]`. An image file given as a path is refused with that
    advice. Seconds become frames with the stream's average frame rate (docs/data_formats.md), which is exact for
    constant-frame-rate video; frames are numbered in presentation order, so index-based sampling is exact for
    variable frame rates too.
    """

    model_input_names = ["pixel_values_videos"]
    valid_kwargs = Eva02AtVideoProcessorKwargs
    # The keywords a call takes: overrides of the settings, and the per-call arguments.
    call_keywords = (*PROCESSOR_SETTINGS, "normalization", *CALL_ARGUMENTS)

    def __init__(
        self,
        num_frames: int = 16,
        size: int | dict = 224,
        crop_size: int | dict | None = None,
        do_resize: bool = True,
        do_center_crop: bool = True,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        normalization: str | None = None,
        video_backend: str = "auto",
        num_threads: int = 1,
        **kwargs,
    ):
        if not is_vision_available():
            # Said first: without Pillow, AutoProcessor fails a step later with transformers' "Received a
            # Eva02AtVideoProcessor for argument image_processor, but a ImageProcessingMixin was expected". Not on
            # import, so that the model and its config, which import the pipeline, load and save without Pillow.
            raise ImportError(
                "The EVA02-AT processor needs Pillow, which transformers' image-processor classes (the video processor "
                "builds on them) require even for video, and it is not installed: pip install pillow"
            )
        super().__init__(**kwargs)
        if normalization is not None:
            image_mean, image_std, do_rescale = _normalization_preset(normalization)
        if video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {video_backend!r}")
        # Plain JSON-serialisable attributes only: save_pretrained writes self.__dict__.
        self.num_frames = int(num_frames)
        self.size = _square_size(size, "size")
        self.crop_size = self.size if crop_size is None else _square_size(crop_size, "crop_size")
        self.do_resize = bool(do_resize)
        self.do_center_crop = bool(do_center_crop)
        _check_crop(self.size, self.crop_size, self.do_resize, self.do_center_crop)
        self.do_rescale = bool(do_rescale)
        self.rescale_factor = float(rescale_factor)
        self.do_normalize = bool(do_normalize)
        self.image_mean = [float(m) for m in (OPENAI_CLIP_MEAN if image_mean is None else image_mean)]
        self.image_std = [float(s) for s in (OPENAI_CLIP_STD if image_std is None else image_std)]
        self.video_backend = video_backend
        self.num_threads = int(num_threads)

    @classmethod
    def from_dict(cls, image_processor_dict: dict, **kwargs):
        # A `size` override takes the saved crop_size with it (crop_size follows size unless both are given);
        # the base class would otherwise pair the new size with the saved crop.
        if kwargs.get("size") is not None and kwargs.get("crop_size") is None:
            image_processor_dict = {key: v for key, v in image_processor_dict.items() if key != "crop_size"}
        # Folders saved before chunk layouts moved to modeling_eva02at.data carry an unused "chunk_ext".
        image_processor_dict = {key: v for key, v in image_processor_dict.items() if key != "chunk_ext"}
        return super().from_dict(image_processor_dict, **kwargs)

    def __call__(self, videos=None, **kwargs) -> BatchFeature:
        """Preprocess a video or a batch of videos (see the class docstring)."""
        return self.preprocess(videos, **kwargs)

    def preprocess(
        self,
        videos,
        num_frames: int | None = None,
        start: float | list | None = None,
        end: float | list | None = None,
        video_fps: float | list | None = None,
        jitter: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """
        Returns a `BatchFeature` with `pixel_values_videos` of shape (batch, num_frames, 3, crop_size, crop_size).
        Keyword arguments named like the constructor's (`size`, `image_mean`, `video_backend`, ...) override it
        for this call.
        """
        check_keywords(kwargs, self.call_keywords, type(self).__name__)
        settings = self._call_settings(num_frames=num_frames, **kwargs)
        videos = make_batched_videos(videos)
        # Times are parsed up front, so that a bad one fails before any video is decoded.
        starts = per_video(start, len(videos), "start", parse=time_to_seconds)
        ends = per_video(end, len(videos), "end", parse=time_to_seconds)
        fps_values = per_video(video_fps, len(videos), "video_fps")
        if jitter and generator is None:
            generator = np.random.default_rng(seed)

        pixel_values = []
        for index, video in enumerate(videos):
            frames = self.load_frames(
                video,
                settings["num_frames"],
                start=starts[index],
                end=ends[index],
                video_fps=fps_values[index],
                jitter=jitter,
                generator=generator,
                name=_video_name(video, index),
                video_backend=settings["video_backend"],
                num_threads=settings["num_threads"],
            )
            pixel_values.append(self.transform_frames(frames, **settings))
        pixel_values = torch.stack(pixel_values)
        if return_tensors in (None, "np"):
            pixel_values = pixel_values.numpy()
        elif return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        return BatchFeature(data={"pixel_values_videos": pixel_values})

    def _call_settings(self, **overrides) -> dict:
        """This instance's settings, with the non-None call-time overrides applied."""
        overrides = {key: value for key, value in overrides.items() if value is not None}
        check_keywords(overrides, (*PROCESSOR_SETTINGS, "normalization"), type(self).__name__)
        settings = {key: getattr(self, key) for key in PROCESSOR_SETTINGS}
        if "size" in overrides and "crop_size" not in overrides:
            settings["crop_size"] = overrides["size"]  # crop_size follows size unless both are given
        settings.update(overrides)
        if "normalization" in settings:
            preset = _normalization_preset(settings.pop("normalization"))
            settings["image_mean"], settings["image_std"], settings["do_rescale"] = preset
        settings["size"] = _square_size(settings["size"], "size")
        settings["crop_size"] = _square_size(settings["crop_size"], "crop_size")
        _check_crop(settings["size"], settings["crop_size"], settings["do_resize"], settings["do_center_crop"])
        return settings

    # -- decoding and sampling ----------------------------------------------------------------------------------------

    def load_frames(
        self,
        video,
        num_frames: int | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        video_fps: float | None = None,
        jitter: bool = False,
        generator: np.random.Generator | None = None,
        name: str | None = None,
        video_backend: str | None = None,
        num_threads: int | None = None,
    ) -> np.ndarray | torch.Tensor:
        """
        Decode and sample one video: returns its `num_frames` sampled frames as (T, H, W, 3), uint8 for encoded
        videos. Useful on its own, e.g. to cache decoded clips.
        """
        num_frames = self.num_frames if num_frames is None else num_frames
        start, end = time_to_seconds(start, "start"), time_to_seconds(end, "end")
        backend = self.video_backend if video_backend is None else video_backend
        num_threads = self.num_threads if num_threads is None else num_threads
        name = name or _video_name(video, 0)
        sample = dict(
            num_frames=num_frames,
            start=start,
            end=end,
            video_fps=video_fps,
            jitter=jitter,
            generator=generator,
            name=name,
        )

        if not _is_encoded(video):
            frames = _frames_to_array(video, name)
            first, stop = frame_range_from_seconds(start, end, video_fps, len(frames), name)
            return frames[self._indices(first, stop, **sample)]

        source = self._encoded_source(video, name)
        with open_video(source, name, backend, num_threads) as reader:
            fps = video_fps or reader.fps
            first, stop = frame_range_from_seconds(start, end, fps, reader.num_frames, name)
            return reader.get_frames(self._indices(first, stop, **sample))

    def probe(self, video, name: str | None = None) -> VideoInfo:
        """What the header of an encoded video (a path, bytes, a file-like object) says, its frame size, frame count,
        rate, duration and byte size, without decoding a frame; a header that cannot be right is refused as
        `load_frames` would refuse it. For limits on what a server accepts before it decodes."""
        name = name or _video_name(video, 0)
        if not _is_encoded(video):
            raise TypeError(f"probe reads encoded videos (a path, bytes or a file-like object), got {name}")
        return probe_video(self._encoded_source(video, name), name)

    @staticmethod
    def _encoded_source(video, name: str):
        """A path or a BytesIO of an encoded video, refused early when it is a folder, missing, empty or an image."""
        if isinstance(video, (str, os.PathLike)):
            path = os.fspath(video)
            if isinstance(path, str) and _URL.match(path):
                raise ValueError(
                    f"{path} is a URL: videos are not downloaded. Download the file first and pass its path (or its "
                    "bytes, or an open file)"
                )
            if os.path.isdir(path):
                raise IsADirectoryError(
                    f"{name} is a folder, not a video file: chunk folders (AVION, LaViLa, EgoVLP) are read with "
                    "modeling_eva02at.data.layouts.load_clip"
                )
            if not os.path.isfile(path):
                raise FileNotFoundError(f"video file not found: {name}")
            with open(path, "rb") as file:
                header = file.read(16)
            source = path
        else:
            # One BytesIO suits both decoders; it shares the memory of a bytes object.
            data = video.read() if hasattr(video, "read") else bytes(video)
            if len(data) == 0:
                raise VideoDecodeError(f"{name} is empty")
            header, source = data[:16], io.BytesIO(data)
        image_format = _image_format(header)
        if image_format:
            raise VideoDecodeError(
                f"{name} is a {image_format} image, not a video: pass it decoded, as a PIL image "
                f"(videos=PIL.Image.open(path), a one-frame video) or as a list of frames (one video)"
            )
        return source

    @staticmethod
    def _indices(first, stop, *, num_frames, jitter, generator, name, **_) -> np.ndarray:
        if stop - first < num_frames:
            logger.debug(f"{name}: {stop - first} frames for {num_frames} samples; frames repeat")
        return sample_frame_indices(first, stop, num_frames, jitter=jitter, generator=generator)

    # -- pixels -------------------------------------------------------------------------------------------------------

    def transform_frames(self, frames, **settings) -> torch.Tensor:
        """(T, H, W, 3) frames -> float32 (T, 3, crop, crop): resize short side, center crop, rescale, normalise."""
        settings = self._call_settings(**settings)
        video = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
        if settings["do_rescale"] and video.is_floating_point() and video.min() >= 0 and video.max() <= 1:
            # As transformers' image processors: warn, and still do what do_rescale says.
            logger.warning_once(
                "It looks like you are trying to rescale already rescaled frames: float frames with values in "
                f"[0, 1] are multiplied by rescale_factor={settings['rescale_factor']:.6g} again. Frames are expected "
                "as 0-255 values; for frames already in [0, 1] pass do_rescale=False."
            )
        # (T, H, W, 3) memory viewed as (T, 3, H, W): channels-last, which is what the fast uint8 kernel wants.
        video = video.permute(0, 3, 1, 2)
        if video.dtype != torch.uint8:
            video = video.float()
        if settings["do_resize"]:
            video = self.resize_short_side(video, settings["size"])
        if settings["do_center_crop"]:
            video = self.center_crop_video(video, settings["crop_size"])
        # One copy into a fresh contiguous float tensor (never the caller's memory), then in-place arithmetic:
        # element-wise ops on the strided channels-last crop are several times slower.
        video = video.to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)
        scale = settings["rescale_factor"] if settings["do_rescale"] else 1.0
        if settings["do_normalize"]:
            # (x * scale - mean) / std, folded into one subtraction and one division.
            mean = torch.tensor(settings["image_mean"]).view(1, 3, 1, 1) / scale
            std = torch.tensor(settings["image_std"]).view(1, 3, 1, 1) / scale
            video.sub_(mean).div_(std)
        elif scale != 1.0:
            video.mul_(scale)
        return video

    @staticmethod
    def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
        """Resize (T, 3, H, W) to short side `size`; the long side becomes int(size * long / short), as torchvision."""
        height, width = video.shape[-2:]
        if min(height, width) == size:
            return video
        if height <= width:
            new_height, new_width = size, int(size * width / height)
        else:
            new_height, new_width = int(size * height / width), size
        if video.dtype == torch.uint8:
            video = video.contiguous(memory_format=torch.channels_last)
        return F.interpolate(video, size=(new_height, new_width), mode="bilinear", antialias=True, align_corners=False)

    @staticmethod
    def center_crop_video(video: torch.Tensor, crop_size: int) -> torch.Tensor:
        """Center crop (T, 3, H, W) to crop_size x crop_size (offsets rounded as torchvision's center_crop)."""
        height, width = video.shape[-2:]
        if height < crop_size or width < crop_size:
            raise ValueError(
                f"cannot center crop crop_size={crop_size} from {height}x{width} frames: resize first (do_resize=True "
                f"with size >= crop_size), or pass a crop_size no larger than the frames"
            )
        top = int(round((height - crop_size) / 2.0))
        left = int(round((width - crop_size) / 2.0))
        return video[..., top : top + crop_size, left : left + crop_size]


__all__ = ["AVION_MEAN", "AVION_STD", "Eva02AtVideoProcessor", "check_keywords", "make_batched_videos", "per_video"]
