"""The paper's study on public data: which runs (``study``), running them as Ray Tune trials
(``runner``), and the report beside the paper's numbers (``report``)."""
