"""The main job end to end: MiniLM imported by manifest, attested, embedded from Lua in a process."""

from tfao.cli.demo import run_demo


def test_demo_embeds_and_compares_sentences(ao_node):
    lines = []
    result = run_demo(ao_node, say=lines.append)
    assert "Error" not in result, result.get("Error")
    text = result["Output"]["data"]
    assert "4 sentences -> 384-dimensional embeddings" in text
    # the well-known sentence-transformers figure for this pair
    assert "cos(1, 2) = 0.7553" in text


def test_unattested_model_halts_the_message(ao_node, ao_process, wallets):
    from weavedrive.manifest import import_model
    from tfao.cli.demo import minilm_folder

    manifest, _ = import_model(ao_node.weave, minilm_folder(), ao_node.wallet)
    result = ao_process.eval(
        f'return require("transformers").bert.encode_text({{model = "{manifest.id}", prompt = "x"}})',
        wallet=wallets[0],
    )
    assert "HALT: FILE NOT FOUND" in result["Error"]
