"""squad's terminal UI (Textual): the only package that imports textual.

- ``app``: the application (layout, keys, how results are shown) and ``run_ui``;
  ``actions``: what the keys do (a mixin of the app).
- ``feeds``: the supervisor tick, the task list and the events, read in thread workers on a
  clock; ``stream``: the output on screen; ``workers``: how a worker reports a failure;
  ``messages``: what workers post back.
- Widgets, one module each: ``agents`` (the tree), ``output`` (output view and grid),
  ``details``, ``header``, ``panels`` (tasks, events), ``gauge``; modal screens in
  ``dialogs``; command-palette commands in ``commands``.
- ``task_queue``: the seam to the task queue; ``render``: pure text rendering (labels,
  gauges, ANSI decoding); ``sample``: a made-up squad for frozen screens. Styles are in
  ``squad.tcss``.
"""
