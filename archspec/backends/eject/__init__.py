"""Eject a spec to standalone PyTorch source: one ``nn.Module`` class per block, named like it.

The generated file imports only torch. Its modules sit at the spec's dotted paths, so a
state_dict of the compiled spec (or torchvision's, for the torchvision specs) loads strictly.
A scope (block call or labelled group) becomes:

- ``nn.Sequential(...)`` when it is a plain chain of numbered items (``layer1``, ``features``);
- a class when it has one input from outside and only its output is used outside;
- otherwise a plain ``nn.Module()`` holder whose layers the enclosing forward calls.

Source is written from data only: each class is a :class:`ClassDef` (its members as the ops'
:class:`~archspec.ops.Module` call descriptions or references to other classes, its forward as
:class:`Step` s). Classes equal up to their constant arguments are merged into one class
whose constructor takes the differing constants (``Basic(planes=128)``). Every name the code
invents comes from one :class:`~archspec.backends.naming.Namespace`.

The modules, bottom to top:

- ``classes``: the classes as data (:class:`ClassDef`, :class:`Step`, members, parameters);
- ``merging``: their constants, taken out and visited; :func:`merge`;
- ``scopes``: the module tree and how each scope is built (sequential, class or holder);
- ``inits``: the network's weight initialisation as groups of layers;
- ``planner``: the graph as merged classes (:class:`~.planner.Ejector`);
- ``params``: network parameters that become constructor arguments;
- ``helpers``: the helper classes whose source the file carries;
- ``source``: literals, wrapped calls, attributes, docstrings (:func:`docstring`);
- ``writer``: the classes as source (:class:`Writer`);
- ``standalone``: the whole file (:func:`eject`).
"""

from __future__ import annotations

from archspec.backends.eject.classes import ClassDef, Step
from archspec.backends.eject.merging import merge
from archspec.backends.eject.params import MAX_PROBED_PARAMS
from archspec.backends.eject.source import docstring
from archspec.backends.eject.standalone import eject
from archspec.backends.eject.writer import Writer

__all__ = ["MAX_PROBED_PARAMS", "ClassDef", "Step", "Writer", "docstring", "eject", "merge"]
