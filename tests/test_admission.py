"""AOP-5 admissibility: attestations, Available items, modes, block heights, test mode."""

import json

import pytest

import weavedrive.admission as admission_module
from weavedrive.admission import Admission, NotAdmitted
from weavedrive.store import WeaveStore
from weavedrive.wallet import Ed25519Signer

SCHEDULER = Ed25519Signer.from_private_bytes(b"\x01" * 32)
ATTESTOR = Ed25519Signer.from_private_bytes(b"\x02" * 32)
STRANGER = Ed25519Signer.from_private_bytes(b"\x03" * 32)
MODULE = {"id": "M" * 43, "owner": "o", "tags": [("Module-Format", "wasm64-unknown-emscripten-draft_2024_02_15")]}


def process(*tags):
    return {"id": "P" * 43, "owner": "o", "tags": [("Scheduler", SCHEDULER.address), *tags]}


@pytest.fixture
def store(tmp_path):
    return WeaveStore(tmp_path)


@pytest.fixture
def data_id(store):
    return store.add_bytes(b"model", STRANGER).id


def attest(store, signer, id):
    return admission_module.attest(store, signer, id).block


def avail(store, signer, *ids, body=b""):
    tags = [("Data-Protocol", "WeaveDrive"), ("Variant", "WeaveDrive.tn.1"), ("Type", "Available")]
    return store.add_bytes(body, signer, tags + [("ID", i) for i in ids]).block


def test_scheduler_attestation_admits_from_its_block_on(store, data_id):
    admission = Admission(process(("Extension", "WeaveDrive")), MODULE, store)
    with pytest.raises(NotAdmitted, match="^HALT: FILE NOT FOUND: .* not admissible"):
        admission.check(data_id, store.current_height())
    height = attest(store, SCHEDULER, data_id)
    with pytest.raises(NotAdmitted):
        admission.check(data_id, height - 1)  # a message before the attestation
    admission.check(data_id, height)
    admission.check(data_id, height + 5)


def test_attestor_tag_and_revocation_by_removing_it(store, data_id):
    height = attest(store, ATTESTOR, data_id)
    with_attestor = process(("Extension", "WeaveDrive"), ("Attestor", ATTESTOR.address))
    Admission(with_attestor, MODULE, store).check(data_id, height)
    with pytest.raises(NotAdmitted, match="no attestation by"):
        Admission(process(("Extension", "WeaveDrive")), MODULE, store).check(data_id, height)


def test_stranger_attestation_and_wrong_tags_do_not_count(store, data_id):
    attest(store, STRANGER, data_id)
    store.add_bytes(b"", SCHEDULER, [("Data-Protocol", "ao"), ("Type", "Attested"), ("Message", data_id)])
    with pytest.raises(NotAdmitted):
        Admission(process(("Extension", "WeaveDrive")), MODULE, store).check(data_id, store.current_height())


def test_extension_required_on_process_or_module(store, data_id):
    height = attest(store, SCHEDULER, data_id)
    with pytest.raises(NotAdmitted, match="does not use WeaveDrive"):
        Admission(process(), MODULE, store).check(data_id, height)
    module = MODULE | {"tags": [("Extension", "WeaveDrive")]}
    Admission(process(), module, store).check(data_id, height)


def test_available_items_need_individual_mode(store, data_id):
    height = avail(store, SCHEDULER, "x" * 43, data_id)
    with pytest.raises(NotAdmitted, match="mode Assignments"):
        Admission(process(("Extension", "WeaveDrive")), MODULE, store).check(data_id, height)
    for spelling in ("Individual", "Library"):
        tags = (("Extension", "WeaveDrive"), ("Availability-Type", spelling))
        Admission(process(*tags), MODULE, store).check(data_id, height)
    module = MODULE | {"tags": [("Extension", "WeaveDrive"), ("Availability-Type", "Individual")]}
    Admission(process(), module, store).check(data_id, height)


def test_library_mode_reads_ids_from_the_available_body(store, data_id):
    height = avail(store, SCHEDULER, body=json.dumps([data_id]).encode())
    Admission(process(("Extension", "WeaveDrive"), ("Availability-Type", "Library")), MODULE, store).check(
        data_id, height
    )
    with pytest.raises(NotAdmitted):
        Admission(process(("Extension", "WeaveDrive"), ("Availability-Type", "Individual")), MODULE, store).check(
            data_id, height
        )


def test_assigned_is_assignments_and_unknown_modes_halt(store, data_id):
    height = attest(store, SCHEDULER, data_id)
    Admission(process(("Extension", "WeaveDrive"), ("Availability-Type", "Assigned")), MODULE, store).check(
        data_id, height
    )
    with pytest.raises(NotAdmitted, match="unsupported Availability-Type 'Everything'"):
        Admission(process(("Extension", "WeaveDrive"), ("Availability-Type", "Everything")), MODULE, store).check(
            data_id, height
        )


def test_on_boot_and_test_mode(store, data_id):
    Admission(process(("On-Boot", data_id)), MODULE, store).check(data_id, 0)
    Admission(process(("Availability-Type", "Test")), MODULE, store).check(data_id, 0)
    Admission(process(), MODULE, store, admit_all=True).check(data_id, 0)
    with pytest.raises(NotAdmitted, match="not a 43-character id"):
        Admission(process(), MODULE, store, admit_all=True).check("../etc/passwd", 0)


def test_dict_style_tags_are_accepted(store, data_id):
    height = attest(store, SCHEDULER, data_id)
    proc = {"id": "P" * 43, "tags": [{"name": "Scheduler", "value": SCHEDULER.address},
                                     {"name": "Extension", "value": "WeaveDrive"}]}
    Admission(proc, MODULE, store).check(data_id, height)


def test_gateway_graphql_is_asked_when_the_local_weave_has_no_answer(store, data_id):
    asked = []

    class Gateway:
        def exists(self, *, owners, tags, max_block):
            asked.append((owners, tags, max_block))
            return True

    Admission(process(("Extension", "WeaveDrive")), MODULE, store, gateway=Gateway()).check(data_id, 42)
    assert asked == [([SCHEDULER.address], [("Data-Protocol", ["ao"]), ("Type", ["Attestation"]),
                                            ("Message", [data_id])], 42)]
