"""Lead scoring: per-tenant rules (points per event kind and per attribute value, events decaying
with a half-life) and a model learnt per tenant from its own conversions through the kernel's
trainer hook, the rules being the baseline it must beat on held-out contacts to be promoted."""
