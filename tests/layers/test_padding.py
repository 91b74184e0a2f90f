"""pad_amounts / output_length against literals worked out by hand from TensorFlow's documented rule.

TF 'same': ek = (k-1)*d + 1; out = ceil(n/s); total = max(0, (out-1)*s + ek - n); before = total // 2,
after = total - before (the odd pixel goes at the end). Keras 'causal': left pad (k-1)*d, then 'valid'.
"""
import pytest

from harness.layers.padding import effective_kernel, output_length, pad_amounts


@pytest.mark.parametrize("k, d, ek", [(1, 1, 1), (3, 1, 3), (3, 2, 5), (2, 3, 4), (4, 2, 7)])
def test_effective_kernel(k, d, ek):
    assert effective_kernel(k, d) == ek, f"effective_kernel({k}, {d})={effective_kernel(k, d)}, but should be {ek}"


# (padding, n, k, stride, dilation) -> (before, after), each worked out by hand in the comment.
PADS = [
    ("same", 5, 3, 2, 1, (1, 1)),   # out=3, total=2*2+3-5=2 -> 1,1
    ("same", 6, 3, 2, 1, (0, 1)),   # out=3, total=2*2+3-6=1 -> 0,1 (extra at the end)
    ("same", 4, 2, 1, 1, (0, 1)),   # out=4, total=3*1+2-4=1 -> 0,1
    ("same", 4, 1, 2, 1, (0, 0)),   # out=2, total=max(0, 1*2+1-4=-1)=0 (clamped)
    ("same", 5, 3, 1, 1, (1, 1)),   # out=5, total=4+3-5=2
    ("same", 3, 2, 2, 1, (0, 1)),   # out=2, total=2+2-3=1
    ("same", 7, 3, 3, 1, (1, 1)),   # out=3, total=2*3+3-7=2
    ("same", 5, 3, 1, 2, (2, 2)),   # ek=5: out=5, total=4+5-5=4
    ("same", 6, 3, 2, 2, (1, 2)),   # ek=5: out=3, total=2*2+5-6=3 -> 1,2
    ("same", 2, 3, 1, 2, (2, 2)),   # ek=5: out=2, total=1+5-2=4 (padding larger than the input)
    ("same", 1, 5, 4, 1, (2, 2)),   # out=1, total=0+5-1=4
    ("valid", 9, 3, 2, 2, (0, 0)),
    ("causal", 10, 4, 1, 2, (6, 0)),  # ek=7: all 6 on the left
    ("causal", 5, 3, 1, 1, (2, 0)),
    ("causal", 5, 1, 1, 1, (0, 0)),
]


@pytest.mark.parametrize("padding, n, k, s, d, want", PADS)
def test_pad_amounts(padding, n, k, s, d, want):
    got = pad_amounts(padding, n, k, s, d)
    assert got == want, f"pad_amounts({padding!r}, n={n}, k={k}, s={s}, d={d})={got}, but should be {want}"


# (padding, n, k, stride, dilation) -> output length
LENGTHS = [
    ("valid", 5, 3, 1, 1, 3),   # 5-3+1
    ("valid", 5, 3, 2, 1, 2),   # (5-3)//2+1
    ("valid", 6, 3, 2, 1, 2),   # (6-3)//2+1 = 2 (the last pixel is never read)
    ("valid", 7, 3, 1, 2, 3),   # ek=5: 7-5+1
    ("valid", 2, 3, 1, 1, 0),   # kernel does not fit
    ("valid", 4, 3, 1, 2, 0),   # ek=5 > 4
    ("same", 5, 3, 2, 1, 3),    # ceil(5/2)
    ("same", 7, 3, 3, 1, 3),    # ceil(7/3)
    ("same", 4, 1, 2, 1, 2),    # ceil(4/2)
    ("same", 2, 3, 1, 2, 2),    # ceil(2/1), even with ek=5 > n
    ("causal", 5, 4, 1, 2, 5),  # causal keeps the length at stride 1
    ("causal", 5, 2, 2, 1, 3),  # (5+1-2)//2+1 = 3
]


@pytest.mark.parametrize("padding, n, k, s, d, want", LENGTHS)
def test_output_length(padding, n, k, s, d, want):
    got = output_length(padding, n, k, s, d)
    assert got == want, f"output_length({padding!r}, n={n}, k={k}, s={s}, d={d})={got}, but should be {want}"


def test_same_output_is_ceil_n_over_s_everywhere():
    # TF documents out = ceil(n / s) for 'same', whatever the kernel and dilation.
    for n in range(1, 13):
        for k in range(1, 6):
            for s in range(1, 5):
                for d in range(1, 4):
                    want = -(-n // s)
                    got = output_length("same", n, k, s, d)
                    assert got == want, f"same length(n={n},k={k},s={s},d={d})={got}, but should be {want}"
                    before, after = pad_amounts("same", n, k, s, d)
                    assert 0 <= after - before <= 1, f"same split ({before},{after}) for n={n},k={k},s={s},d={d}"


def test_unknown_padding_is_refused():
    with pytest.raises(ValueError, match="full"):
        pad_amounts("full", 5, 3, 1, 1)
