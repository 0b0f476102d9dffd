"""Store ↔ account bindings: the primitives, the entry rule, HQ review, binding sheets."""
