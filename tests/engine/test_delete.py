"""Deleting studies: refused while a job of any gearview process needs them."""

from __future__ import annotations

import factory
import pytest

from gearview.config import load_config
from gearview.jobqueue import SEND, JobQueue
from gearview.lifecycle.delete import StudyBusyError, delete_studies
from gearview.net.tasks import send_params


def test_a_job_another_process_queued_since_our_queue_opened_blocks_the_delete(
    cache, home, tmp_path
):
    study = factory.add_study(cache, tmp_path / "s", 2, rows=8, cols=8)
    ours = JobQueue(home, load_config(home))  # a long-lived queue, like the GUI's
    job = JobQueue(home, load_config(home)).submit(SEND, "Send", send_params("PACS", [study]))
    with pytest.raises(StudyBusyError, match=job.id):
        delete_studies(cache, [study], queue=ours)
    assert cache.study(study).number_of_study_related_instances == 2
