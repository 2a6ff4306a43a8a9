"""squad's terminal UI (Textual): the only package that imports textual.

- ``app``: the application (layout, keys, how results are shown) and ``run_ui``;
  ``actions``: what the keys do (a mixin of the app); ``commands``: the command palette.
- ``feeds``: the supervisor tick, the task list and the events, read in thread workers on a
  clock; ``stream``: the output on screen, streamed over tmux's control connection;
  ``workers``: how a worker reports a failure; ``messages``: what workers post back.
- Widgets, one module each: ``agents`` (the tree), ``output`` (output view and grid),
  ``details``, ``header``, ``panels`` (tasks, events, policy), ``gauge``, ``keybar`` (the
  footer); ``diffview``: the diff view (a screen of its own); modal screens in ``dialogs``.
- ``paint``: repaint only what changed; ``render``: pure text rendering (labels, gauges,
  ANSI decoding); ``task_queue``: the seam to the task queue; ``sample``: a made-up squad
  for frozen screens. Styles are in ``squad.tcss``.
"""
