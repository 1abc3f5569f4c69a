"""Checkpoint files: reading (``files``), writing and rotation (``manager``), and when to resume (``resume``).

Reading needs none of the training engine, so the evaluate stages import ``files`` alone.
"""
