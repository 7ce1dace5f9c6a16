"""EgoMCQ accuracy (inter-video / intra-video) as an `evaluate` metric.

    import evaluate
    from modeling_eva02at.evaluation.metrics import metric_path

    mcq = evaluate.load(metric_path("egomcq"))
    mcq.compute(predictions=similarity, references=answers, types=types)

``predictions`` are (num_questions, 5) similarities (or predicted candidate indices), ``references`` the correct
candidate indices, ``types`` 1 = inter-video, 2 = intra-video. The numbers come from
``modeling_eva02at.evaluation.metrics.egomcq_accuracy``.
"""

import datasets
import evaluate
import numpy as np

from modeling_eva02at.evaluation.metrics import egomcq_accuracy


_DESCRIPTION = """\
EgoMCQ: for each text query, pick the best of 5 candidate clips (argmax similarity). Accuracy is reported for
inter-video questions (types == 1, candidates from different videos), intra-video questions (types == 2, candidates
from the same video) and overall, as fractions in [0, 1].
"""

_CITATION = """\
@inproceedings{lin2022egocentric,
  title={Egocentric Video-Language Pretraining},
  author={Lin, Kevin Qinghong and Wang, Alex Jinpeng and Soldan, Mattia and others},
  booktitle={Advances in Neural Information Processing Systems},
  year={2022}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: (num_questions, num_candidates) similarities, or (num_questions,) predicted candidate indices.
    references: (num_questions,) index of the correct candidate.
    types: (num_questions,) 1 = inter-video, 2 = intra-video.
    num_candidates: optional, candidates per question (default: the width of predictions, or 5).
Returns:
    inter_video_accuracy, intra_video_accuracy, accuracy, num_inter_video, num_intra_video.
"""


class Egomcq(evaluate.Metric):
    def _info(self):
        labels = {"references": datasets.Value("int64"), "types": datasets.Value("int64")}
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32")), **labels}),
                datasets.Features({"predictions": datasets.Value("int64"), **labels}),
            ],
            reference_urls=["https://github.com/showlab/EgoVLP"],
        )

    def _compute(self, predictions, references, types, num_candidates=None):
        return egomcq_accuracy(
            np.asarray(predictions), np.asarray(references), np.asarray(types), num_candidates=num_candidates
        )
