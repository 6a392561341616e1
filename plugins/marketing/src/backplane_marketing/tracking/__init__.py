"""Tracking: the public routes a recipient's mail client reaches (open pixel, click redirect,
one-click unsubscribe) by opaque tokens stored server-side, and bounce/complaint intake."""
