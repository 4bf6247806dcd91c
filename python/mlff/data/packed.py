"""Packed data sets: labelled structures and their neighbour lists in one HDF5 file,
read lazily by training (``mlff data pack``, ``mlff train --train FILE.h5``).

Why HDF5 (through h5py): one portable, self-describing file; chunked datasets with
optional compression (lzf, gzip) and a bounded chunk cache; random access to any slice
without reading the rest; readable from C, Fortran, Julia and every HDF5 tool
(``h5ls``, ``h5dump``); h5py is mature and maintained with the HDF Group's library.
LMDB stores opaque records (pickles) in a memory map that grows past RAM in page cache
and ties the file to a byte format we would define ourselves; ASE's database keeps
Atoms rows (SQLite/JSON) but no neighbour lists, and reads an order of magnitude slower.

Layout (``format = "mlff-packed"``, ``version = 1``): structures are variable-length
rows of flat arrays, found by offsets.

============================  =====================  ==========================================
dataset                       shape, dtype           meaning
============================  =====================  ==========================================
``atom_offset``               ``[n+1]`` int64        atoms of structure k: ``atom_offset[k]:atom_offset[k+1]``
``edge_offset``               ``[n+1]`` int64        its edges: ``edge_offset[k]:edge_offset[k+1]``
``numbers``                   ``[A]`` int16          atomic numbers
``positions``, ``forces``     ``[A, 3]`` float64     Å, eV/Å
``energy``                    ``[n]`` float64        eV
``cell``                      ``[n, 3, 3]`` float64  Å (as stored in the input, also for molecules)
``pbc``                       ``[n, 3]`` bool
``stress``, ``has_stress``    ``[n, 6]``, ``[n]``    Voigt eV/Å³ (ASE sign), NaN where absent
``edge_index``                ``[E, 2]`` int32       centre ``i``, neighbour ``j`` (within the structure)
``edge_shift``                ``[E, 3]`` int32       integer cell shift ``S``: ``r_ij = x_j − x_i + S·cell``
============================  =====================  ==========================================

Attributes: ``r_max`` (the neighbour lists' cutoff; training checks it equals its own),
``species`` (element symbols by atomic number), ``n_structures``, ``periodicity``,
``pair_min_distance`` (JSON: shortest distance per species pair over all edges), and
``sources``. The neighbour lists are those of :func:`mlff.graph.neighbor_shifts`, so a
structure's graph is the one ``atoms_to_graph`` builds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from ..errors import ConfigError, DataError

FORMAT = "mlff-packed"
VERSION = 1
SUFFIXES = (".h5", ".hdf5")


def is_packed(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file (by its signature, whatever the suffix)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - a dependency of mlff
        raise ConfigError("packed data sets need h5py (pip install h5py)") from None
    return h5py


# ---------------------------------------------------------------------------------- packing


def _record(atoms: Atoms) -> tuple:
    """The arrays of one normalised frame (cheap to send to a worker process)."""
    stress = atoms.info.get("stress")
    return (atoms.numbers.astype(np.int16), np.ascontiguousarray(atoms.positions, dtype=np.float64),
            np.asarray(atoms.cell.array, dtype=np.float64), np.asarray(atoms.pbc, dtype=bool),
            float(atoms.info["energy"]), np.asarray(atoms.arrays["forces"], dtype=np.float64),
            None if stress is None else np.asarray(stress, dtype=np.float64))


def _neighbours(args: tuple) -> tuple:
    """Worker: neighbour lists of a chunk of records, and the chunk's shortest distance per
    pair of atomic numbers. Errors come back as text naming the frame."""
    from ..graph import neighbor_shifts, shift_vectors

    records, r_max, first = args
    out, closest = [], {}
    for k, (numbers, positions, cell, pbc, *_rest) in enumerate(records):
        try:
            atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
            edge_index, shifts, used_cell = neighbor_shifts(atoms, r_max)
        except DataError as exc:
            return f"frame {first + k}: {exc}", None
        if edge_index.shape[1]:
            vec = positions[edge_index[1]] - positions[edge_index[0]] + shift_vectors(shifts, used_cell)
            d = np.linalg.norm(vec, axis=1)
            za, zb = numbers[edge_index[0]].astype(np.int64), numbers[edge_index[1]].astype(np.int64)
            key = np.minimum(za, zb) * 1000 + np.maximum(za, zb)
            for u in np.unique(key):
                m = float(d[key == u].min())
                closest[int(u)] = min(closest.get(int(u), np.inf), m)
        out.append((edge_index.T.astype(np.int32), shifts.astype(np.int32)))
    return out, closest


def _frames(inputs: Sequence[Path]) -> Iterator[tuple[Path, int, Atoms]]:
    """Labelled frames of every input, one at a time (never the whole file in memory)."""
    import ase.io

    from .io import _normalise_frame

    for path in inputs:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        fmt = "extxyz" if path.suffix.lower() in (".extxyz", ".xyz") else None
        k = -1
        try:
            for k, atoms in enumerate(ase.io.iread(path, index=":", format=fmt)):
                yield path, k, _normalise_frame(atoms, path, k, ("energy", "forces"))
        except DataError:
            raise
        except Exception as exc:  # ASE raises many types for bad input
            raise DataError(f"{path}: cannot parse frame {k + 1} (counting from 0): {type(exc).__name__}: {exc}") \
                from None


class _Writer:
    """Appends chunks of structures to resizable, chunked HDF5 datasets."""

    def __init__(self, h5, compression: str | None, chunk_rows: int):
        self.h5 = h5
        kw = {"compression": compression} if compression else {}
        if compression:
            kw["shuffle"] = True
        spec = {"numbers": ((), np.int16), "positions": ((3,), np.float64), "forces": ((3,), np.float64),
                "energy": ((), np.float64), "cell": ((3, 3), np.float64), "pbc": ((3,), bool),
                "stress": ((6,), np.float64), "has_stress": ((), bool),
                "edge_index": ((2,), np.int32), "edge_shift": ((3,), np.int32)}
        for name, (shape, dtype) in spec.items():
            rows = chunk_rows if name in ("numbers", "positions", "forces", "edge_index", "edge_shift") \
                else max(1, chunk_rows // 16)
            h5.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                              chunks=(rows, *shape), **kw)
        self.atom_offset = [0]
        self.edge_offset = [0]

    def append(self, records: list[tuple], edges: list[tuple]) -> None:
        def grow(name, values):
            ds = self.h5[name]
            n = ds.shape[0]
            ds.resize(n + len(values), axis=0)
            ds[n:] = values

        grow("numbers", np.concatenate([r[0] for r in records]))
        grow("positions", np.concatenate([r[1] for r in records]))
        grow("forces", np.concatenate([r[5] for r in records]))
        grow("energy", np.array([r[4] for r in records]))
        grow("cell", np.stack([r[2] for r in records]))
        grow("pbc", np.stack([r[3] for r in records]))
        grow("stress", np.stack([np.full(6, np.nan) if r[6] is None else r[6] for r in records]))
        grow("has_stress", np.array([r[6] is not None for r in records]))
        grow("edge_index", np.concatenate([e[0] for e in edges]))
        grow("edge_shift", np.concatenate([e[1] for e in edges]))
        for r, e in zip(records, edges):
            self.atom_offset.append(self.atom_offset[-1] + len(r[0]))
            self.edge_offset.append(self.edge_offset[-1] + len(e[0]))


def pack(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, r_max: float, workers: int = 1,
         chunk_frames: int = 256, compression: str | None = "lzf", progress: bool = True,
         frames: Iterable[Atoms] | None = None) -> dict:
    """Write the labelled frames of ``inputs`` (extxyz, read one frame at a time) — or the
    ``frames`` given instead — to the packed file ``output``, with neighbour lists within
    ``r_max`` computed by ``workers`` processes, ``chunk_frames`` frames per task (at most
    ``2 × workers`` tasks in flight, so memory stays bounded whatever the input's size).
    Written to a temporary file and renamed at the end. Returns a summary."""
    import time

    from tqdm import tqdm

    h5py = _h5py()
    output = Path(output)
    if r_max <= 0:
        raise ConfigError(f"--r-max must be > 0, got {r_max}")
    if workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    if compression not in (None, "lzf", "gzip"):
        raise ConfigError(f"compression must be none, lzf or gzip, got {compression!r}")
    inputs = [Path(p) for p in inputs]
    if frames is not None:
        from .io import _normalise_frame

        source = ((None, k, _normalise_frame(a, Path("frames"), k, ("energy", "forces")))
                  for k, a in enumerate(frames))
    else:
        source = _frames(inputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    t0 = time.perf_counter()
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    numbers_seen: set[int] = set()
    closest: dict[int, float] = {}
    periodic: set[bool] = set()
    n_done = 0
    bar = tqdm(desc="packing", unit=" frames", disable=not progress)
    try:
        with h5py.File(tmp, "w") as h5:
            writer = _Writer(h5, compression, chunk_rows=16384)
            pending: list = []  # (records, async result or result), oldest first

            def drain_one() -> None:
                nonlocal n_done
                records, result = pending.pop(0)
                edges, chunk_closest = result.get() if pool is not None else result
                if isinstance(edges, str):
                    raise DataError(f"{', '.join(map(str, inputs)) or 'frames'}: {edges}")
                writer.append(records, edges)
                for key, d in chunk_closest.items():
                    closest[key] = min(closest.get(key, np.inf), d)
                n_done += len(records)
                bar.update(len(records))

            chunk: list[tuple] = []
            first = 0

            def submit() -> None:
                nonlocal chunk, first
                task = (chunk, float(r_max), first)
                pending.append((chunk, pool.apply_async(_neighbours, (task,)) if pool is not None
                                else _neighbours(task)))
                first += len(chunk)
                chunk = []
                while len(pending) >= 2 * workers:  # bounded: at most 2 x workers chunks in flight
                    drain_one()

            for _, _, atoms in source:
                numbers_seen.update(int(z) for z in np.unique(atoms.numbers))
                periodic.add(bool(np.all(atoms.pbc)))
                chunk.append(_record(atoms))
                if len(chunk) >= chunk_frames:
                    submit()
            if chunk:
                submit()
            while pending:
                drain_one()
            if n_done == 0:
                raise DataError(f"{', '.join(map(str, inputs)) or 'frames'}: no frames to pack")
            h5.create_dataset("atom_offset", data=np.asarray(writer.atom_offset, dtype=np.int64))
            h5.create_dataset("edge_offset", data=np.asarray(writer.edge_offset, dtype=np.int64))
            species = [chemical_symbols[z] for z in sorted(numbers_seen)]
            pair_min = {}
            for key, d in sorted(closest.items()):
                za, zb = divmod(key, 1000)
                pair_min[f"{chemical_symbols[za]}-{chemical_symbols[zb]}"] = d
            h5.attrs.update({"format": FORMAT, "version": VERSION, "r_max": float(r_max),
                             "species": json.dumps(species), "n_structures": n_done,
                             "n_atoms": int(writer.atom_offset[-1]), "n_edges": int(writer.edge_offset[-1]),
                             "periodicity": "mixed" if len(periodic) > 1 else
                             ("periodic" if periodic.pop() else "non-periodic"),
                             "pair_min_distance": json.dumps(pair_min),
                             "sources": json.dumps([str(p) for p in inputs])})
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return {"n_structures": n_done, "species": species, "n_atoms": int(writer.atom_offset[-1]),
            "n_edges": int(writer.edge_offset[-1]), "r_max": float(r_max), "wall_s": time.perf_counter() - t0,
            "bytes": output.stat().st_size, "path": str(output)}


# ---------------------------------------------------------------------------------- reading


class PackedDataset:
    """A packed file (or a subset of its structures, ``indices``), read lazily.

    Only the two offset arrays (16 bytes per structure) live in memory; a batch reads its
    structures' rows when asked (:meth:`batch`), through HDF5's chunk cache of at most
    ``cache_mb`` MiB per dataset. The file is opened on first use in each process, so a
    dataset can be handed to worker processes.
    """

    def __init__(self, path: str | os.PathLike, indices: np.ndarray | None = None, cache_mb: float = 16.0,
                 _shared: dict | None = None):
        self.path = Path(path)
        self.cache_mb = cache_mb
        if _shared is None:
            h5py = _h5py()
            if not self.path.is_file():
                raise DataError(f"{self.path}: no such file")
            try:
                with h5py.File(self.path, "r") as h5:
                    attrs = dict(h5.attrs)
                    if attrs.get("format") != FORMAT:
                        raise DataError(f"{self.path}: not an mlff packed data set (no format={FORMAT!r}); "
                                        f"write one with 'mlff data pack'")
                    if int(attrs.get("version", 0)) > VERSION:
                        raise DataError(f"{self.path}: packed format version {attrs['version']} is newer than "
                                        f"this mlff reads ({VERSION})")
                    _shared = {"atom_offset": h5["atom_offset"][:], "edge_offset": h5["edge_offset"][:],
                               "attrs": attrs, "handle": None, "pid": None}
            except OSError as exc:
                raise DataError(f"{self.path}: cannot read as HDF5: {exc}") from None
        self._shared = _shared
        n = len(self._shared["atom_offset"]) - 1
        self.indices = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        self.n_atoms = np.diff(self._shared["atom_offset"])[self.indices]
        attrs = self._shared["attrs"]
        self.r_max = float(attrs["r_max"])
        self.species = json.loads(attrs["species"])
        self.periodicity = str(attrs["periodicity"])
        self.pair_min_distance = json.loads(attrs["pair_min_distance"])
        self.n_total = n

    # -- structure
    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, positions: Sequence[int] | np.ndarray) -> "PackedDataset":
        """The structures at ``positions`` of this dataset (sharing the open file)."""
        return PackedDataset(self.path, self.indices[np.asarray(positions, dtype=np.int64)], self.cache_mb,
                             _shared=self._shared)

    def _h5(self):
        shared = self._shared
        if shared["handle"] is None or shared["pid"] != os.getpid():
            h5py = _h5py()
            # the chunk cache is per dataset: cache_mb in all, spread over the ten datasets
            shared["handle"] = h5py.File(self.path, "r", rdcc_nbytes=int(self.cache_mb * 2**20 / 10),
                                         rdcc_nslots=10007)
            shared["pid"] = os.getpid()
        return shared["handle"]

    def close(self) -> None:
        if self._shared.get("handle") is not None:
            self._shared["handle"].close()
            self._shared["handle"] = None

    # -- reading
    def _rows(self, file_indices: np.ndarray) -> dict[str, list]:
        """Arrays of the structures ``file_indices`` (in that order), read one contiguous run
        of structures at a time."""
        h5 = self._h5()
        ao, eo = self._shared["atom_offset"], self._shared["edge_offset"]
        out: dict[str, list] = {k: [] for k in ("numbers", "positions", "forces", "edge_index", "edge_shift",
                                                "energy", "cell", "pbc", "stress", "has_stress")}
        runs = _runs(file_indices)
        for lo, hi in runs:
            a0, a1, e0, e1 = ao[lo], ao[hi], eo[lo], eo[hi]
            block = {"numbers": h5["numbers"][a0:a1], "positions": h5["positions"][a0:a1],
                     "forces": h5["forces"][a0:a1], "edge_index": h5["edge_index"][e0:e1],
                     "edge_shift": h5["edge_shift"][e0:e1], "energy": h5["energy"][lo:hi],
                     "cell": h5["cell"][lo:hi], "pbc": h5["pbc"][lo:hi], "stress": h5["stress"][lo:hi],
                     "has_stress": h5["has_stress"][lo:hi]}
            for s in range(lo, hi):
                sa, sb, ea, eb = ao[s] - a0, ao[s + 1] - a0, eo[s] - e0, eo[s + 1] - e0
                k = s - lo
                for name in ("numbers", "positions", "forces"):
                    out[name].append(block[name][sa:sb])
                out["edge_index"].append(block["edge_index"][ea:eb])
                out["edge_shift"].append(block["edge_shift"][ea:eb])
                for name in ("energy", "cell", "pbc", "stress", "has_stress"):
                    out[name].append(block[name][k])
        return out

    def frames(self, positions: Sequence[int] | None = None) -> list[Atoms]:
        """The structures at ``positions`` (all by default) as labelled ``Atoms`` (the
        :func:`mlff.data.io.read_dataset` convention)."""
        idx = self.indices if positions is None else self.indices[np.asarray(positions, dtype=np.int64)]
        rows = self._rows(idx)
        frames = []
        for k in range(len(idx)):
            atoms = Atoms(numbers=rows["numbers"][k], positions=rows["positions"][k], cell=rows["cell"][k],
                          pbc=rows["pbc"][k])
            atoms.info["energy"] = float(rows["energy"][k])
            atoms.arrays["forces"] = np.array(rows["forces"][k], dtype=np.float64)
            if rows["has_stress"][k]:
                atoms.info["stress"] = np.array(rows["stress"][k], dtype=np.float64)
            frames.append(atoms)
        return frames

    def batch(self, positions: Sequence[int] | np.ndarray, species: Sequence[str],
              dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        """The structures at ``positions`` as one collated :class:`mlff.graph.Graph` (labels
        included), species indexed into ``species``."""
        from ..graph import Graph, shift_vectors

        idx = self.indices[np.asarray(positions, dtype=np.int64)]
        rows = self._rows(idx)
        lookup = np.full(max(atomic_numbers.values()) + 1, -1, dtype=np.int64)
        for k, s in enumerate(species):
            lookup[atomic_numbers[s]] = k
        numbers = np.concatenate(rows["numbers"]).astype(np.int64)
        spec = lookup[numbers]
        if (spec < 0).any():
            missing = sorted({chemical_symbols[z] for z in numbers[spec < 0]})
            raise DataError(f"{self.path}: element(s) {missing} not among the model's species {list(species)}")
        counts = [len(n) for n in rows["numbers"]]
        offsets = np.cumsum([0] + counts[:-1])
        periodic = [bool(np.all(p)) for p in rows["pbc"]]
        cells = [c if p else np.zeros((3, 3)) for c, p in zip(rows["cell"], periodic)]
        shift = [shift_vectors(s, c) if p else np.zeros((len(s), 3))
                 for s, c, p in zip(rows["edge_shift"], cells, periodic)]
        edges = np.concatenate([e.astype(np.int64) + o for e, o in zip(rows["edge_index"], offsets)]) \
            if rows["edge_index"] else np.zeros((0, 2), dtype=np.int64)
        volume = [abs(float(np.linalg.det(c))) if p else 0.0 for c, p in zip(cells, periodic)]
        has_stress = all(bool(h) for h in rows["has_stress"])
        stress = None
        if has_stress:
            v = np.stack(rows["stress"])
            xx, yy, zz, yz, xz, xy = v.T
            stress = np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1),
                               np.stack([xz, yz, zz], -1)], 1)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)  # noqa: E731
        return Graph(
            species=torch.as_tensor(spec, device=device),
            pos=t(np.concatenate(rows["positions"])),
            edge_index=torch.as_tensor(edges.T.copy(), device=device),
            shift_vec=t(np.concatenate(shift) if shift else np.zeros((0, 3))),
            batch=torch.as_tensor(np.repeat(np.arange(len(counts)), counts), device=device),
            n_atoms=torch.as_tensor(np.asarray(counts, dtype=np.int64), device=device),
            cell=t(np.stack(cells)),
            volume=t(volume),
            energy=t(rows["energy"]),
            forces=t(np.concatenate(rows["forces"])),
            stress=None if stress is None else t(stress),
        )

    def all_stress_labelled(self) -> bool:
        """Whether every structure of this dataset is periodic with a stress label."""
        h5 = self._h5()
        has = h5["has_stress"][:][self.indices]
        pbc = h5["pbc"][:][self.indices]
        return bool(has.all() and pbc.all())

    def graphs(self, positions: Sequence[int], species: Sequence[str], dtype: torch.dtype = torch.float64) -> list:
        """One :class:`mlff.graph.Graph` per structure at ``positions`` (statistics)."""
        return [self.batch([k], species, dtype) for k in positions]

    def blocks(self, max_mb: float = 4.0) -> Iterator[tuple[np.ndarray, dict]]:
        """``(positions, rows)`` for consecutive groups of structures of this dataset of about
        ``max_mb`` MiB of arrays each (sorted by position in the file; streaming statistics)."""
        order = np.argsort(self.indices, kind="stable")
        ao, eo = self._shared["atom_offset"], self._shared["edge_offset"]
        per_structure = (49 * (ao[-1] - ao[0]) + 20 * (eo[-1] - eo[0])) / max(self.n_total, 1) + 200
        size = max(1, int(max_mb * 2**20 / per_structure))
        for start in range(0, len(order), size):
            pos = order[start:start + size]
            yield pos, self._rows(self.indices[pos])


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive values in ``indices`` (kept in order): ``[(lo, hi)]``."""
    if len(indices) == 0:
        return []
    idx = np.asarray(indices, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(idx)]])
    return [(int(idx[a]), int(idx[b - 1]) + 1) for a, b in zip(starts, ends)]


def read_packed(path: str | os.PathLike) -> list[Atoms]:
    """Every structure of a packed file as labelled ``Atoms`` (small files; tests)."""
    return PackedDataset(path).frames()


def streaming_energy_statistics(data: PackedDataset, species: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Composition counts ``[n, S]``, total energies ``[n]`` and the RMS force component of
    the structures of ``data``, read block by block (memory: the counts, not the forces)."""
    lookup = {atomic_numbers[s]: k for k, s in enumerate(species)}
    counts = np.zeros((len(data), len(species)))
    energies = np.zeros(len(data))
    f_sq, n_f = 0.0, 0
    for pos, rows in data.blocks():
        for k, p in enumerate(pos):
            z, c = np.unique(rows["numbers"][k], return_counts=True)
            for zz, cc in zip(z, c):
                counts[p, lookup[int(zz)]] = cc
            energies[p] = rows["energy"][k]
        forces = np.concatenate(rows["forces"])
        f_sq += float(np.sum(forces ** 2))
        n_f += forces.size
    return counts, energies, float(np.sqrt(f_sq / max(n_f, 1)))
