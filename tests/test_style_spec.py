import pytest

from scoring_job.style_spec import NUM_BUILTIN_STYLES, BuiltinStyle, ImageStyle, StyleSpecError, parse_style


def test_single_index_is_one_hot():
    style = parse_style("19")
    assert isinstance(style, BuiltinStyle)
    assert style.weights[19] == 1.0 and sum(style.weights) == 1.0
    assert len(style.weights) == NUM_BUILTIN_STYLES


def test_blend_is_normalised_and_round_trips():
    style = parse_style(" 3:1 , 12:3 ")
    assert style.weights[3] == pytest.approx(0.25) and style.weights[12] == pytest.approx(0.75)
    assert parse_style(style.spec) == style


def test_repeated_index_adds_up():
    assert parse_style("3:0.5,3:0.5").weights[3] == 1.0


@pytest.mark.parametrize("name", ["starry.jpg", "styles/Monet Water Lilies.PNG", "a.webp"])
def test_image_names_select_the_arbitrary_model(name):
    assert parse_style(name) == ImageStyle(name)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("", "empty"), ("26", "out of range"), ("-1", "bad style spec"), ("3:0.5,x", "bad style spec"),
     ("3:0", "add up to zero"), ("starry.gif", "bad style spec"), ("1:-2", "bad style spec")],
)
def test_bad_specs_name_the_problem_and_the_valid_forms(spec, reason):
    with pytest.raises(StyleSpecError) as error:
        parse_style(spec)
    assert reason in str(error.value)
    assert "3:0.5,12:0.5" in str(error.value) and ".jpg" in str(error.value)
