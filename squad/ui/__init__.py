"""squad's terminal UI (Textual): the only package that imports textual.

``app`` holds the application and ``run_ui``; each widget lives in its own module
(``agents``, ``output``, ``details``, ``header``, ``panels``), modal screens in ``dialogs``,
command-palette commands in ``commands``, the task-queue seam in ``tasks``, and pure text
rendering (labels, gauges, ANSI decoding) in ``render``. Styles are in ``squad.tcss``.
"""
