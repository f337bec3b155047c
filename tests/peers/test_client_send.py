"""C-STORE SCU against Orthanc and a strict DCMTK storescp: decompress fallback, kill + retry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factory import make_ct
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.errors import NetworkError
from gearview.jobqueue import DONE, FAILED, SEND
from gearview.net.contexts import MAX_CONTEXTS, plan_send
from gearview.net.send import WARNING, SendItem, _outcome, items_for, send_items
from gearview.net.tasks import open_queue, send_params
from peers.orthanc import orthanc_with
from peers.storescp import StoreSCP
from peers.tools import free_port

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    peer = orthanc_with(tmp_path_factory.mktemp("send") / "orthanc")
    yield peer
    peer.stop()


def cached_study(cache, folder: Path, n: int, syntaxes=(None,)) -> tuple[str, dict[str, Dataset]]:
    """A study of n CT slices in the cache, cycling through `syntaxes` (None = as made).

    Returns the study UID and the uncompressed originals by SOP Instance UID.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    originals = {}
    for i in range(n):
        ds = make_ct(study, series, i + 1)
        originals[ds.SOPInstanceUID] = ds.copy()
        ts = syntaxes[i % len(syntaxes)]
        if ts is not None:
            ds.compress(ts, generate_instance_uid=False)
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        cache.add_file(path)
    return study, originals


def test_send_study_to_orthanc(orthanc, home, cache, tmp_path):
    study, originals = cached_study(cache, tmp_path / "in", 5)
    result = send_items(orthanc.node(), load_config(home), items_for(cache, [study]))
    assert result.count("success") == 5 and result.ok
    assert orthanc.study_instances(study) == sorted(originals)


def test_send_study_as_stored_and_compressed_to_orthanc(orthanc, home, cache, tmp_path):
    """Orthanc accepts J2K/RLE: the stored bytes go as they are (no conversion)."""
    study, _ = cached_study(cache, tmp_path / "in", 4, (RLELossless, JPEG2000Lossless))
    result = send_items(orthanc.node(), load_config(home), items_for(cache, [study]))
    assert result.ok and not any(o.converted_to for o in result.outcomes.values())
    instances = orthanc.rest(
        "/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study}}
    )
    syntaxes = {orthanc.rest(f"/instances/{i}/metadata/TransferSyntax") for i in instances}
    assert syntaxes == {str(RLELossless), str(JPEG2000Lossless)}


def test_cli_send_study_and_files(orthanc, home, cache, tmp_path, capsys):
    config = load_config(home)
    config.nodes = [orthanc.node("PACS")]
    save_config(home, config)
    study, originals = cached_study(cache, tmp_path / "in", 3)
    assert main(["send", "PACS", study]) == 0
    assert "3 of 3 sent" in capsys.readouterr().out
    assert orthanc.study_instances(study) == sorted(originals)
    loose = tmp_path / "loose"
    loose.mkdir()
    ds = make_ct(generate_uid(), generate_uid(), 1)
    ds.save_as(loose / "one.dcm", enforce_file_format=True)
    (loose / "README.txt").write_text("not dicom")
    assert main(["send", "PACS", str(loose)]) == 0
    assert orthanc.study_instances(ds.StudyInstanceUID) == [ds.SOPInstanceUID]


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["NOSUCH", "1.2.3"], "unknown node"),
        (["PACS", "1.2.3.4.5"], "nothing to send"),
    ],
)
def test_cli_send_one_line_errors(orthanc, home, capsys, argv_tail, message):
    config = load_config(home)
    config.nodes = [orthanc.node("PACS")]
    save_config(home, config)
    assert main(["send", *argv_tail]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_send_refused_association(home, cache, tmp_path, capsys):
    study, _ = cached_study(cache, tmp_path / "in", 1)
    assert main(["send", f"NOBODY@127.0.0.1:{free_port()}", study]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gearview: error: ")
    assert "refused the connection" in err and "--retry" in err


def test_strict_peer_gets_decompressed_pixels(home, cache, tmp_path):
    """storescp accepts only uncompressed: RLE and J2K instances arrive decompressed and intact."""
    study, originals = cached_study(
        cache, tmp_path / "in", 6, (RLELossless, JPEG2000Lossless, None)
    )
    with StoreSCP(tmp_path / "out") as scp:
        result = send_items(scp.node(), load_config(home), items_for(cache, [study]))
    assert result.ok and result.count("success") == 6
    converted = [o for o in result.outcomes.values() if o.converted_to]
    assert len(converted) == 4
    assert sorted(scp.received()) == sorted(originals)
    for path in (tmp_path / "out").iterdir():
        ds = dcmread(path)
        assert ds.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        original = originals[ds.SOPInstanceUID]
        assert np.array_equal(ds.pixel_array, original.pixel_array)
        assert "LossyImageCompression" not in ds or ds.LossyImageCompression == "00"


def test_peer_accepting_j2k_gets_stored_bytes(home, cache, tmp_path):
    study, _ = cached_study(cache, tmp_path / "in", 2, (JPEG2000Lossless,))
    with StoreSCP(tmp_path / "out", extra=["+xv"]) as scp:
        result = send_items(scp.node(), load_config(home), items_for(cache, [study]))
    assert result.ok and not any(o.converted_to for o in result.outcomes.values())
    stored = {r.sop_instance_uid: dcmread(r.path) for r in cache.instances(study_uid=study)}
    for path in (tmp_path / "out").iterdir():
        ds = dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
        assert ds.PixelData == stored[ds.SOPInstanceUID].PixelData


def test_peer_killed_mid_send_then_retry_sends_only_missing(home, cache, tmp_path):
    study, originals = cached_study(cache, tmp_path / "in", 30)
    config = load_config(home)
    first = StoreSCP(tmp_path / "out1").start()
    config.nodes = [first.node("STRICT", timeout=5)]
    queue = open_queue(home, config, cache)
    job = queue.submit(SEND, "send", send_params("STRICT", [study]))

    def kill_after_ten(progress) -> None:
        if progress.done >= 10 and first.process is not None:
            first.kill()

    try:
        record = queue.run(job.id, kill_after_ten)
    finally:
        first.stop()
    assert record.state == FAILED and "STRICT" in record.error
    sent_first = set(record.completed_uids)
    assert 10 <= len(sent_first) < 30
    assert sent_first <= set(first.received())

    with StoreSCP(tmp_path / "out2", port=first.port) as second:
        queue.retry(job.id)
        record = queue.run(job.id)
        assert record.state == DONE, record.error
        received = second.received()
    assert set(received) == set(originals) - sent_first
    assert all(count == 1 for count in received.values())
    assert set(record.completed_uids) == set(originals)


def test_contexts_split_over_128():
    """Many SOP classes x syntaxes: at most 128 contexts per association, classes kept whole."""
    pairs = [
        (f"1.2.3.{i}", ts) for i in range(100) for ts in (JPEG2000Lossless, ExplicitVRLittleEndian)
    ]
    batches = plan_send(pairs)
    assert len(batches) == 2
    assert all(len(b.contexts) <= MAX_CONTEXTS for b in batches)
    assert sum(len(b.sop_classes) for b in batches) == 100
    for batch in batches:
        assert {cx.abstract_syntax for cx in batch.contexts} == batch.sop_classes


def test_warning_status_is_kept_per_instance():
    status = Dataset()
    status.Status = 0xB007
    status.ErrorComment = "coerced"
    outcome = _outcome(
        SendItem(Path("x"), "1.2.3", CTImageStorage, ExplicitVRLittleEndian), status, ""
    )
    assert (
        outcome.outcome == WARNING and "0xB007" in outcome.message and "coerced" in outcome.message
    )


def test_send_to_nobody_raises_network_error(home, cache, tmp_path):
    study, _ = cached_study(cache, tmp_path / "in", 1)
    node = StoreSCP(tmp_path / "never", port=free_port()).node()
    with pytest.raises(NetworkError, match="refused"):
        send_items(node, load_config(home), items_for(cache, [study]))


@pytest.fixture
def lossy_only_peer():
    """A pynetdicom storage SCP that accepts CT only as lossy JPEG 2000 (no DCMTK option does)."""
    from pynetdicom import AE, evt

    received: list[Dataset] = []

    def on_store(event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE(ae_title="LOSSYONLY")
    ae.add_supported_context(CTImageStorage, [JPEG2000])
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    node = StoreSCP(Path("."), aet="LOSSYONLY", port=port).node("LOSSY")
    yield node, received
    server.shutdown()


def test_lossy_only_peer_refused_without_admin_permission(lossy_only_peer, home, cache, tmp_path):
    node, received = lossy_only_peer
    study, _ = cached_study(cache, tmp_path / "in", 2)
    result = send_items(node, load_config(home), items_for(cache, [study]))
    assert not result.ok and result.count("failed") == 2 and not received
    message = next(iter(result.outcomes.values())).message
    assert "only lossy" in message and "allow_lossy_conversion" in message


def test_lossy_conversion_when_allowed_marks_the_instance(lossy_only_peer, home, cache, tmp_path):
    node, received = lossy_only_peer
    study, originals = cached_study(cache, tmp_path / "in", 2)
    config = load_config(home)
    config.client.allow_lossy_conversion = True
    result = send_items(node, config, items_for(cache, [study]))
    assert result.ok and len(received) == 2
    for ds in received:
        assert ds.file_meta.TransferSyntaxUID == JPEG2000
        assert ds.SOPInstanceUID not in originals  # a lossy copy is a new instance
        assert ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == "ISO_15444_1"
        assert float(ds.LossyImageCompressionRatio) > 1
    assert all("sent lossy" in o.message for o in result.outcomes.values())


def test_cli_retry_after_refused_send(home, cache, tmp_path, capsys):
    """A send to a peer that is down fails with a retry hint; `send --retry JOB` then completes."""
    study, originals = cached_study(cache, tmp_path / "in", 3)
    port = free_port()
    assert main(["send", f"STORESCP@127.0.0.1:{port}", study]) == 5
    last = capsys.readouterr().err.strip().splitlines()[-1]
    job_id = last.rsplit("--retry ", 1)[1].rstrip("`)")
    with StoreSCP(tmp_path / "out", port=port) as scp:
        assert main(["send", "--retry", job_id]) == 0
        assert "3 of 3 sent" in capsys.readouterr().out
        assert sorted(scp.received()) == sorted(originals)


def test_many_sop_classes_split_across_associations(home, tmp_path):
    """70 SOP classes need 140 contexts: two associations, every instance arrives."""
    from gearview.conformance import storage_sop_classes

    items = []
    study, series = generate_uid(), generate_uid()
    for i, sop_class in enumerate(storage_sop_classes()[:70]):
        ds = make_ct(study, series, i + 1, rows=8, cols=8)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        path = tmp_path / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        items.append(SendItem.from_path(path))
    with StoreSCP(tmp_path / "out") as scp:
        result = send_items(scp.node(), load_config(home), items)
    assert result.associations == 2
    assert result.ok and len(scp.received()) == 70
