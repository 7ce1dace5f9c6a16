"""Charades-Ego action recognition mAP as an `evaluate` metric.

    import evaluate
    from modeling_eva02at.evaluation.metrics import metric_path

    charades = evaluate.load(metric_path("charades_ego_map"))
    charades.compute(predictions=scores, references=labels)  # (num_videos, 157) each

The number comes from ``modeling_eva02at.evaluation.metrics.charades_ego_map``.
"""

import datasets
import evaluate
import numpy as np

from modeling_eva02at.evaluation.metrics import charades_ego_map


_DESCRIPTION = """\
Charades-Ego mAP: per class, the average of the precision at each positive video when videos are ranked by
descending score; mean over the classes with at least one positive. Videos without any label are left out.
A fraction in [0, 1].
"""

_CITATION = """\
@inproceedings{sigurdsson2018charadesego,
  title={Actor and Observer: Joint Modeling of First and Third-Person Videos},
  author={Sigurdsson, Gunnar A and Gupta, Abhinav and Schmid, Cordelia and Farhadi, Ali and Alahari, Karteek},
  booktitle={CVPR},
  year={2018}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: (num_videos, num_classes) scores, one row per video.
    references: (num_videos, num_classes) multi-hot 0/1 labels.
Returns:
    mAP: float in [0, 1].
"""


class CharadesEgoMap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://prior.allenai.org/projects/charades-ego"],
        )

    def _compute(self, predictions, references):
        return charades_ego_map(np.asarray(predictions), np.asarray(references))
