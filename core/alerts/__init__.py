"""Alert delivery: channels (group robots), the outbox, signing, digests."""
