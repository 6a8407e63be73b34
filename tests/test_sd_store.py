"""``sd.txt2img{..., store = true}`` on real nodes: two nodes computing the same process return the same item
id and each holds the item in its weave; a restart replays to the same id; the process reads the image back
through WeaveDrive once the item is attested, and the gateway routes serve it, like any other item."""

import base64

import pytest

pytest.importorskip("diffusers")

from starlette.testclient import TestClient

from sd_fixtures import build_reference
from tfao.bridges.transformers import output_item
from tfao.http.server import create_app
from tfao.models.stable_diffusion import IMAGE_TAGS
from tfao.node.node import Node
from weavedrive.admission import attest, attest_with_files
from weavedrive.manifest import import_model

GRAPHQL = '{ transactions(tags: [{name: "From-Process", values: ["%s"]}, {name: "Type", values: ["Image"]}]) { edges { node { id } } } }'
DRAW = ('IMAGE = require("transformers").sd.txt2img{{model="{model}", prompt="a cat", steps=1, height=16,'
        ' width=16, store=true}} URL = require("transformers").sd.txt2img{{model="{model}", prompt="a cat", steps=1,'
        ' height=16, width=16}} return IMAGE')


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_reference(tmp_path_factory.mktemp("tiny-sd-store"))[1]


def copy_items(source: Node, destination: Node, ids) -> None:
    for id in ids:
        destination.weave.add_raw_item(source.weave.raw_item_bytes(id))


def output_of(node: Node, pid: str, message_id: str) -> str:
    result = node.result(pid, message_id, timeout=300)
    assert "Error" not in result, result["Error"]
    return result["Output"]["data"]


def test_two_nodes_store_the_same_item_and_a_restart_keeps_it(tiny_sd, tmp_path, wallets):
    owner = wallets[0]
    here = Node(tmp_path / "here", wallet=wallets[3])
    there = Node(tmp_path / "there", wallet=wallets[2])
    try:
        manifest, files = import_model(here.weave, tiny_sd, here.wallet, name="tiny-sd")
        attestations = attest_with_files(here.weave, here.wallet, manifest.id)  # by the process's Authority
        # the same module, model, process and message on both nodes
        copy_items(here, there, [here.module_id, manifest.id, *(f.id for f in files), *(a.id for a in attestations)])
        pid = here.spawn(wallet=owner).id
        there.submit(here.weave.raw_item_bytes(pid))
        message_id = here.message(pid, data=DRAW.format(model=manifest.id), tags=[("Action", "Eval")], wallet=owner)
        there.submit(here.weave.raw_item_bytes(message_id))

        image_id = output_of(here, pid, message_id)
        assert output_of(there, pid, message_id) == image_id
        url = here.process(pid).eval("return URL", wallet=owner)["Output"]["data"]
        png = base64.b64decode(url.split(",", 1)[1])
        for node in (here, there):
            assert node.has_item(image_id) and node.read_item_data(image_id) == png
            assert node.item(image_id).tags_dict() == {"App-Name": "Transformers-AO", "Content-Type": "image/png",
                                                       "Type": "Image", "From-Process": pid}
        assert output_item(pid, png, IMAGE_TAGS).id == image_id
        with TestClient(create_app(here)) as gateway:  # served like any item
            raw = gateway.get(f"/raw/{image_id}")
            assert raw.content == png and raw.headers["content-type"] == "image/png"
            found = gateway.post("/graphql", json={"query": GRAPHQL % pid}).json()["data"]["transactions"]["edges"]
            assert [edge["node"]["id"] for edge in found] == [image_id]

        # reading it back from the process follows the admission rules: refused until attested
        read_back = 'return #require("weavedrive").getData(IMAGE)'
        assert "Error" in here.process(pid).eval(read_back, wallet=owner)
        attest(here.weave, here.wallet, image_id)
        assert here.process(pid).eval(read_back, wallet=owner)["Output"]["data"] == str(len(png))
    finally:
        here.close()
        there.close()

    with Node(tmp_path / "there", wallet=wallets[2]) as restarted:  # replays the log from the memo
        assert restarted.process(pid).eval("return IMAGE", wallet=owner)["Output"]["data"] == image_id
        assert restarted.has_item(image_id)


def test_a_dryrun_names_the_item_without_storing_it(tiny_sd, tmp_path, wallets):
    owner = wallets[0]
    with Node(tmp_path / "node", wallet=wallets[3]) as node:
        manifest, _ = import_model(node.weave, tiny_sd, node.wallet, name="tiny-sd")
        attest_with_files(node.weave, node.wallet, manifest.id)
        process = node.spawn(wallet=owner)
        draw = ('return require("transformers").sd.txt2img{{model="{model}", prompt="a cat", steps=1, height=16,'
                ' width=16, seed=7, store=true}}').format(model=manifest.id)
        named = process.dryrun("Eval", data=draw, owner=owner.address)["Output"]["data"]
        assert not node.has_item(named)  # a dry-run changes nothing
        assert output_of(node, process.id, process.message("Eval", data=draw, wallet=owner)) == named
        assert node.has_item(named)
