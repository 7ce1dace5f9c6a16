"""EPIC-Kitchens-100 multi-instance retrieval mAP / nDCG as an `evaluate` metric.

    import evaluate
    from modeling_eva02at.evaluation.metrics import metric_path

    mir = evaluate.load(metric_path("ek100_mir"))
    mir.compute(predictions=similarity, references=relevancy)  # (num_clips, num_captions) arrays

The numbers come from ``modeling_eva02at.evaluation.metrics.ek100_mir_metrics``; see its docstring for the definitions.
"""

import datasets
import evaluate
import numpy as np

from modeling_eva02at.evaluation.metrics import ek100_mir_metrics


_DESCRIPTION = """\
EPIC-Kitchens-100 multi-instance retrieval: mean average precision (relevant = relevancy exactly 1, precision from
the cumulative graded relevancy, as in the official evaluation) and nDCG, for video->text (rows) and text->video
(columns), and their means. Values are fractions in [0, 1].
"""

_CITATION = """\
@article{damen2022rescaling,
  title={Rescaling Egocentric Vision: Collection, Pipeline and Challenges for EPIC-KITCHENS-100},
  author={Damen, Dima and Doughty, Hazel and Farinella, Giovanni Maria and others},
  journal={International Journal of Computer Vision},
  year={2022}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: (num_clips, num_captions) similarity matrix S = V T^T, one row per clip.
    references: (num_clips, num_captions) relevancy matrix R in [0, 1] (see modeling_eva02at.data.relevancy).
    num_workers: optional number of threads.
Returns:
    vis2txt_mAP, txt2vis_mAP, avg_mAP, vis2txt_nDCG, txt2vis_nDCG, avg_nDCG (floats in [0, 1]).
Notes:
    compute(predictions=S, references=R) on whole matrices goes straight to the numpy function (no copy). Rows
    added with add_batch(...) are stored by evaluate as float32 Arrow lists first, and read back as 2-D arrays.
"""


class Ek100Mir(evaluate.Metric):
    def _info(self):
        info = evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
            reference_urls=["https://github.com/epic-kitchens/epic-kitchens-100-annotations"],
        )
        # Read stored rows back as 2-D numpy arrays instead of ~37 M Python floats. MetricInfo only accepts a
        # format for scalar features when it is constructed; fixed-length float rows stack fine, so it is set after.
        info.format = "numpy"
        return info

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the EK-100 MIR metrics.

        Whole matrices passed here skip evaluate's Arrow round trip (which copies and re-reads every row); the
        data of earlier ``add_batch`` calls, or a distributed set-up, takes the regular path.
        """
        direct = predictions is not None and references is not None
        if direct and self.writer is None and self.num_process == 1:
            return self._compute(predictions=predictions, references=references, **kwargs)
        return evaluate.Metric.compute(self, predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, num_workers=None):
        return ek100_mir_metrics(np.asarray(predictions), np.asarray(references), num_workers=num_workers)
