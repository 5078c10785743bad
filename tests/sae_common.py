"""What the SAE tests share: the hooks of the small layer-15 store and the architectures trained on it."""

HOOK = "blocks.15.hook_resid_post"
TRANSCODER_IN = "blocks.15.hook_resid_mid"
TRANSCODER_OUT = "blocks.15.hook_mlp_out"
ARCHS = [("topk", None), ("batchtopk", None), ("jumprelu", None), ("relu", None),
         ("batchtopk", TRANSCODER_OUT), ("relu", TRANSCODER_OUT)]


def arch_id(a: tuple[str, str | None]) -> str:
    return a[0] + ("-transcoder" if a[1] else "")
