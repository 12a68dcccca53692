"""Differential test: `featpool inspect` and `featpool pool` on files torch.save wrote, against
torch on the same tensors.

Usage: /usr/bin/python3 torch_pt_test.py FEATPOOL

Debian's python3-torch saves a tensor, a dict, an OrderedDict, a list, a nested dict, an
nn.Parameter, views that are not contiguous (a permute, slices with an offset, a transpose, a
broadcast stride of 0, views sharing one storage, one larger than featpool's gathering block),
half, bfloat16, integer and bool tensors. featpool lists each with its container path, shape,
dtype and storage, computes the statistics torch computes, and pools every one as torch's
adaptive pooling does (in float64, from the same tensor). The last line is
`torch_pt_test: N passed, M failed`; the exit code is 1 on any failure.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

FEATPOOL = ""


def featpool(*args):
    done = subprocess.run([FEATPOOL, *args], capture_output=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"featpool {' '.join(args)}: exit {done.returncode}: "
                             f"{done.stderr.decode()}")
    return done.stdout


def torch_pool(t, size, op):
    """torch's adaptive pooling of an N C spatial... tensor, in float64."""
    x = t.detach().double()
    rank = x.dim() - 2
    if op == "avg":
        return [F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d][rank - 1](
            x, size)
    return [F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d][rank - 1](
        x, size)


def generator():
    return torch.Generator().manual_seed(20240607)


def saved_objects():
    """File name -> the object torch.save writes."""
    g = generator()

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    base = randn(2, 6, 5, 7)
    big = randn(5, 64, 64, 128)  # 10 MiB: views of it span several gathering blocks
    shared = {
        "nhwc": base.permute(0, 2, 3, 1),
        "channels": base[:, 2:5],
        "every_other": base[:, :, ::2, 1:],
        "transposed": base.transpose(2, 3),
        "expanded": base[:, :, :1, :1].expand(2, 6, 4, 4),
        "whole": base,
        "big_permuted": big.permute(0, 3, 1, 2)[:, 5:70],
        "big_transposed": big.transpose(0, 1),
    }
    layer4 = randn(2, 16, 7, 7)
    objects = {
        "tensor.pt": randn(2, 8, 9, 9),
        "dict.pt": {"layer4": layer4, "logits": randn(2, 10), "epoch": 3, "arch": "resnet"},
        "ordered.pth": collections.OrderedDict(conv1=randn(1, 4, 9, 9), conv2=randn(1, 8, 5, 5)),
        "list.pt": [randn(2, 3, 6, 6), randn(2, 3, 4, 4, 4)],
        "nested.pt": {"out": {"feats": [randn(2, 4, 6, 6), randn(2, 4, 3, 3)],
                              "logits": randn(2, 5, 3)},
                      "meta": {"step": 1, "lr": 0.1, "tags": ("a", None)}},
        "views.pt": shared,
        "half.pt": {"act": randn(2, 4, 6, 6).half()},
        "bfloat16.pt": {"act": randn(2, 4, 6, 6).bfloat16()},
        "parameter.pt": {"weight": torch.nn.Parameter(randn(4, 3, 5, 5))},
        "ints.pt": {"int64": torch.randint(-1000, 1000, (2, 3, 5, 5), generator=g),
                    "uint8": torch.randint(0, 255, (2, 3, 5, 5), generator=g).to(torch.uint8),
                    "bool": torch.randint(0, 2, (2, 3, 5, 5), generator=g).bool()},
    }
    return objects


def named_tensors(obj, path=""):
    """The tensors of a saved object by featpool's names: the container path."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from named_tensors(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from named_tensors(value, f"{path}.{i}" if path else str(i))


DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64", torch.int64: "int64", torch.uint8: "uint8",
               torch.bool: "bool"}


class TorchFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="featpool-torch-")
        cls.tensors = {}  # path -> {name: tensor}
        for name, obj in saved_objects().items():
            path = os.path.join(cls.dir, name)
            torch.save(obj, path)
            stem = os.path.splitext(name)[0]
            found = dict(named_tensors(obj))
            cls.tensors[path] = {stem if key == "" else key: t for key, t in found.items()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def inspect(self, *args):
        return json.loads(featpool("inspect", "--json", *args))

    def test_inspect_lists_every_tensor_like_torch(self):
        for path, tensors in self.tensors.items():
            with self.subTest(path=path):
                listed = self.inspect("--attrs", path)
                self.assertEqual([r["name"] for r in listed], list(tensors))
                for record in listed:
                    t = tensors[record["name"]]
                    self.assertEqual(record["format"], "pt")
                    self.assertEqual(record["shape"], list(t.shape))
                    self.assertEqual(record["dtype"], DTYPE_NAMES[t.dtype])
                    self.assertTrue(record["numeric"])
                    self.assertEqual(record["byte_order"],
                                     "none" if t.element_size() == 1 else "little")
                    self.assertEqual(record["order"], "C")
                    self.assertEqual(record["nbytes"], t.numel() * t.element_size())
                    self.assertEqual(record["attrs"]["storage_offset"], t.storage_offset())
                    self.assertEqual(record["attrs"]["stride"], list(t.stride()))

    def test_shared_storage_is_one_key(self):
        path = os.path.join(self.dir, "views.pt")
        keys = {r["name"]: r["attrs"]["storage"] for r in self.inspect("--attrs", path)}
        self.assertEqual(keys["nhwc"], keys["whole"])
        self.assertEqual(keys["transposed"], keys["channels"])
        self.assertNotEqual(keys["big_permuted"], keys["whole"])

    def test_inspect_stats_match_torch(self):
        for path, tensors in self.tensors.items():
            for record in self.inspect("--stats", path):
                t = tensors[record["name"]].detach().double()
                with self.subTest(path=path, name=record["name"]):
                    self.assertEqual(record["min"], t.min().item())
                    self.assertEqual(record["max"], t.max().item())
                    self.assertAlmostEqual(record["mean"], t.mean().item(), delta=1e-9)

    def test_pool_matches_torch(self):
        out = os.path.join(self.dir, "out")
        os.mkdir(out)
        checked = 0
        for path, tensors in self.tensors.items():
            for name, t in tensors.items():
                if t.dim() < 3:
                    continue
                for op, size in (("avg", 1), ("avg", 3), ("max", 2), ("max", 1)):
                    with self.subTest(path=path, name=name, op=op, size=size):
                        target = os.path.join(out, "o.npy")
                        featpool("pool", f"{path}:{name}", "-o", target, "--op", op, "--size",
                                 str(size), "--force", "-q")
                        got = np.load(target)
                        ref = torch_pool(t, size, op).numpy()
                        if t.dtype in (torch.int64, torch.uint8, torch.bool) and op == "max":
                            np.testing.assert_array_equal(got, ref.astype(got.dtype))
                        else:
                            self.assertEqual(got.dtype, np.float32)
                            np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-6,
                                                       atol=1e-7)
                        checked += 1
        self.assertGreater(checked, 80)

    def test_directory_of_pt_and_pth_files(self):
        out = os.path.join(self.dir, "pooled.h5")
        report = json.loads(featpool("pool", self.dir, "-o", out, "--report", "-",
                                     "--report-format", "json", "-q"))
        pooled = [r for r in report["tensors"] if r["status"] == "ok"]
        expected = sum(t.dim() in (3, 4, 5) for ts in self.tensors.values() for t in ts.values())
        self.assertEqual(len(pooled), expected)
        self.assertEqual(report["totals"]["failed"], 0)

    def test_zip_named_otherwise_is_read_by_its_contents(self):
        # Hugging Face names torch.save files pytorch_model.bin.
        src = os.path.join(self.dir, "dict.pt")
        bin_path = os.path.join(self.dir, "pytorch_model.bin")
        shutil.copy(src, bin_path)
        try:
            self.assertEqual([r["name"] for r in self.inspect(bin_path)],
                             [r["name"] for r in self.inspect(src)])
        finally:
            os.remove(bin_path)


def main():
    global FEATPOOL
    FEATPOOL = os.path.abspath(sys.argv[1])
    result = unittest.main(argv=sys.argv[:1], exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"torch_pt_test: {result.testsRun - failed - len(result.skipped)} passed, "
          f"{failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
