"""Copies the sample photos that ship inside installed Python packages into
OUT_DIR, with a CREDITS.txt naming their source and licence.

With --fitting: the other colour photos of those packages instead, which
the page does not offer; they widen the set the conditional sampler's patch
statistics can be fitted on (`evidence-lens held-out-statistics`). Grey
photos (camera, coins, grass, ...) are left out: as RGB they would teach
the sampler that the three channels are always equal.

Usage: python copy_photos.py [--fitting] OUT_DIR
"""

import os
import shutil
import sys

import matplotlib
import skimage
import sklearn

SKIMAGE = os.path.join(os.path.dirname(skimage.__file__), "data")
SKLEARN = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")
MATPLOTLIB = os.path.join(matplotlib.get_data_path(), "sample_data")

# (file name, folder, credit line)
PHOTOS = [
    ("chelsea.png", SKIMAGE, "Chelsea the cat, by Stefan van der Walt (CC0), scikit-image"),
    ("coffee.png", SKIMAGE, "Coffee cup at Pikolo Espresso Bar, by Rachel Michetti (CC0), scikit-image"),
    ("astronaut.png", SKIMAGE, "Astronaut Eileen Collins, NASA Great Images (public domain), scikit-image"),
    ("rocket.jpg", SKIMAGE, "Falcon 9 launching DSCOVR, SpaceX (public domain), scikit-image"),
    ("china.jpg", SKLEARN, "China, by danielbuechele on Flickr (CC BY 2.0), scikit-learn"),
    ("flower.jpg", SKLEARN, "Flower, by vultilion on Flickr (CC BY 2.0), scikit-learn"),
    ("grace_hopper.jpg", MATPLOTLIB, "Grace Hopper, US Navy photograph (public domain), matplotlib"),
]

FITTING_PHOTOS = [
    ("hubble_deep_field.jpg", SKIMAGE, "Hubble eXtreme Deep Field, NASA (public domain), scikit-image"),
    ("retina.jpg", SKIMAGE, "Fundus photograph of a normal left eye, by Mikael Haggstrom (CC0), scikit-image"),
    ("motorcycle_left.png", SKIMAGE, "Motorcycle, left view, Middlebury 2014 stereo benchmark (Scharstein et al.), scikit-image"),
    ("motorcycle_right.png", SKIMAGE, "Motorcycle, right view, Middlebury 2014 stereo benchmark (Scharstein et al.), scikit-image"),
    ("ihc.png", SKIMAGE, "Immunohistochemical staining of colonic glands, CMMI (no known copyright restrictions), scikit-image"),
]


def main(out_dir, photos):
    os.makedirs(out_dir, exist_ok=True)
    lines = []
    for name, folder, credit in photos:
        shutil.copyfile(os.path.join(folder, name), os.path.join(out_dir, name))
        lines.append(f"{name}\t{credit}")
    with open(os.path.join(out_dir, "CREDITS.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"copied {len(photos)} photos to {out_dir}")


if __name__ == "__main__":
    if sys.argv[1] == "--fitting":
        main(sys.argv[2], FITTING_PHOTOS)
    else:
        main(sys.argv[1], PHOTOS)
