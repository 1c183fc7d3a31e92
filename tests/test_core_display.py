"""Tables as a reader expects them: percentages, counts, folded configs."""

import pandas as pd
import pytest

from lib.core.display import config_table, show_table
from lib.papers.foundations.toy import CONFIGS


def test_percentages_counts_and_floats_are_formatted():
    frame = pd.DataFrame({"wer": [0.164508, 0.05], "utterances": [2000.0, 300.0],
                          "loss": [1.23456789, 0.000123456]})
    html = show_table(frame, percent=["wer"], integer=["utterances"]).to_html()
    assert "16.5 %" in html and "5.0 %" in html and "0.164508" not in html
    assert "2,000" in html and "2000.0" not in html
    assert "1.23" in html and "0.000123" in html and "1.23456789" not in html
    with pytest.raises(ValueError, match="no column matches 'acc'"):
        show_table(frame, percent=["acc"])


def test_config_is_folded_with_its_knob_count():
    html = config_table(CONFIGS["smoke"])._repr_html_()
    assert html.startswith('<details class="book-config">') and "knobs of <code>ToyConfig" in html
    assert html.count("<tr>") == 1 + len(CONFIGS["smoke"].__dataclass_fields__)
    assert "<code>lr</code></td><td>0.05" in html
