"""Tasks turn model outputs into a loss and into predictions."""

from mmfuse.tasks.base import Task
from mmfuse.tasks.classification import ClassificationTask
from mmfuse.tasks.regression import RegressionTask
from mmfuse.tasks.retrieval import RetrievalTask


def create_task(task: str, num_outputs: int, class_weights: list[float] | None = None) -> Task:
    """Builds the task object for "classification" or "regression"."""
    if task == "classification":
        return ClassificationTask(num_outputs, class_weights)
    return RegressionTask()


__all__ = ["ClassificationTask", "RegressionTask", "RetrievalTask", "Task", "create_task"]
