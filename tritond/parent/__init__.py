"""The parent process: supervisor, model loading and control, children, systemd.

Nothing outside the parent imports this package (``shm/``, ``scheduler/``,
``frontend/`` and ``workers/`` only see the shared floor of ``tritond``).
"""
