import numpy as np

from InteractiveSegLib.encodings import gaussian_map, geodesic_map


def test_gaussian_is_normalised_peaks_at_click_and_has_paper_sigma():
    g = gaussian_map((41, 41), [(20, 20)])
    assert g.max() == 1.0 and g[20, 20] == 1.0
    # sigma 2: value at 2 voxels is exp(-1/2) of the peak
    assert abs(g[20, 22] - np.exp(-0.5)) < 0.02
    wider = gaussian_map((41, 41), [(20, 20)], sigma=5)
    assert wider[20, 25] > g[20, 25]


def test_gaussian_of_several_clicks_and_of_none():
    g = gaussian_map((30, 30), [(5, 5), (20, 20)])
    assert g[5, 5] > 0.9 and g[20, 20] > 0.9 and g[12, 12] < 0.01
    assert not gaussian_map((30, 30), []).any()
    assert not gaussian_map((30, 30), [(99, 99)]).any()  # outside points are ignored


def test_geodesic_distance_is_stopped_by_an_edge():
    img = np.zeros((40, 40), np.float32)
    img[:, 20:] = 100.0  # a strong edge between the halves
    g = geodesic_map(img, [(20, 5)], lamb=10.0)
    assert g[20, 5] == 1.0
    same_side, other_side = g[20, 15], g[20, 25]
    assert same_side > other_side * 5
    # without intensity weighting it is the Euclidean distance
    flat = geodesic_map(np.zeros((40, 40), np.float32), [(20, 5)])
    assert abs(flat[20, 15] - flat[30, 5]) < 1e-3


def test_encodings_work_in_3d():
    assert gaussian_map((9, 9, 9), [(4, 4, 4)])[4, 4, 4] == 1.0
    assert geodesic_map(np.ones((9, 9, 9), np.float32), [(4, 4, 4)])[4, 4, 4] == 1.0
