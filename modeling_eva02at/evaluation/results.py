"""What an evaluation returns, and the paper's reported numbers to compare against (arXiv 2506.14356)."""

from __future__ import annotations

from dataclasses import dataclass, field


PAPER_RESULTS = {
    "EVA02-AT-B": {
        "ek100_mir_zero_shot": {"avg_mAP": 34.3, "avg_nDCG": 34.1},
        "ek100_mir_fine_tuned": {"avg_mAP": 59.0, "avg_nDCG": 70.8},
        "charades_ego_zero_shot": {"mAP": 27.8},
        "charades_ego_fine_tuned": {"mAP": 38.0},
        "egomcq": {"inter_video_accuracy": 95.0, "intra_video_accuracy": 63.2},
    },
    "EVA02-AT-L": {
        "ek100_mir_zero_shot": {"avg_mAP": 38.9, "avg_nDCG": 36.2},
        "ek100_mir_fine_tuned": {"avg_mAP": 63.5, "avg_nDCG": 74.2},
        "charades_ego_zero_shot": {"mAP": 30.9},
        "charades_ego_fine_tuned": {"mAP": 42.5},
        "egomcq": {"inter_video_accuracy": 95.9, "intra_video_accuracy": 66.5},
    },
}
"""The paper's reported numbers (docs/results.md), in percent; EgoClip+ pretraining, SMS fine-tuning. The paper gives
only the mean of the two EK-100 MIR directions."""


@dataclass
class EvaluationResult:
    """Metrics (fractions in [0, 1]) of one evaluation, with where its features came from."""

    task: str
    metrics: dict
    num_videos: int
    num_texts: int
    features_path: str | None = None
    from_cache: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json_dict(self, **settings) -> dict:
        """A JSON-ready dict: metrics (fractions), counts, cache information and the given settings."""
        return {
            "task": self.task,
            "metrics": self.metrics,
            "num_videos": self.num_videos,
            "num_texts": self.num_texts,
            "features_cache": {"path": self.features_path, "hit": self.from_cache},
            "seconds": round(self.seconds, 3),
            **self.extra,
            "settings": settings,
            "paper_percent": {
                name: {setting: numbers for setting, numbers in results.items() if setting.startswith(self.task)}
                for name, results in PAPER_RESULTS.items()
            },
        }
