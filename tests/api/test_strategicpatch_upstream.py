"""Strategic merge patch against test vectors of upstream's patch_test.go.

Each case gives Original, Modified and Current documents and the two-way and
three-way patches kubectl computes from them, and the result of applying each.
The schema mirrors upstream's test type ``mergeItem``.
"""

import pytest
import yaml

from pyk8s.api.strategicpatch import (create_three_way_merge_patch, create_two_way_merge_patch,
                                      strategic_merge_patch)

ITEM = {"$ref": "#/$defs/mergeItem"}
MERGE_ITEM: dict = {
    "type": "object",
    "properties": {
        "name": {}, "value": {}, "other": {},
        "mergingList": {"type": "array", "items": ITEM, "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"},
        "nonMergingList": {"type": "array", "items": ITEM},
        "mergingIntList": {"type": "array", "items": {"type": "integer"},
                           "x-kubernetes-patch-strategy": "merge"},
        "mergeItemPtr": {"type": "array", "items": ITEM, "x-kubernetes-patch-merge-key": "name",
                         "x-kubernetes-patch-strategy": "merge"},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "retainKeysMap": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys",
                          "properties": {"name": {}, "value": {}, "other": {}}},
    },
}


@pytest.fixture(autouse=True)
def merge_item_schema(monkeypatch):
    # Register the test type so "$ref" to it resolves like a real definition.
    from pyk8s.api import schemas
    defs = dict(schemas.definitions())
    defs["mergeItem"] = MERGE_ITEM
    monkeypatch.setattr(schemas, "definitions", lambda: defs)


CASES = yaml.safe_load(r"""
- description: replace non merging list nested in merging list
  original:
    mergingList:
      - {name: 1, nonMergingList: [{name: 1}, {name: 2, value: 2}]}
      - {name: 2}
  twoWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]
  modified:
    mergingList:
      - {name: 1, nonMergingList: [{name: 1, value: 1}]}
      - {name: 2}
  current:
    mergingList:
      - {name: 1, other: a, nonMergingList: [{name: 1}, {name: 2, value: 2}]}
      - {name: 2, other: b}
  threeWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]
  result:
    mergingList:
      - {name: 1, other: a, nonMergingList: [{name: 1, value: 1}]}
      - {name: 2, other: b}

- description: add field to map in merging list nested in merging list with value conflict
  original:
    mergingList:
      - {name: 1, mergingList: [{name: 1}, {name: 2, value: 2}]}
      - {name: 2}
  twoWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 1}, {name: 2}]
        name: 1
        mergingList: [{name: 1, value: 1}]
  modified:
    mergingList:
      - {name: 1, mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]}
      - {name: 2}
  current:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 1, value: a, other: c},
                                          {name: 2, value: b, other: d}]}
      - {name: 2, other: b}
  threeWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 1}, {name: 2}]
        name: 1
        mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]
  result:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 1, value: 1, other: c},
                                          {name: 2, value: 2, other: d}]}
      - {name: 2, other: b}

- description: reorder map in merging list nested in merging list with deletion conflict
  original:
    mergingList:
      - {name: 1, mergingList: [{name: 1}, {name: 2, value: 2}]}
      - {name: 2}
  twoWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 2}, {name: 1}]
        name: 1
        mergingList: [{name: 1, value: 1}]
  modified:
    mergingList:
      - {name: 1, mergingList: [{name: 2, value: 2}, {name: 1, value: 1}]}
      - {name: 2}
  current:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}]}
      - {name: 2, other: b}
  threeWay:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
      - $setElementOrder/mergingList: [{name: 2}, {name: 1}]
        name: 1
        mergingList: [{name: 1, value: 1}]
  result:
    mergingList:
      - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}, {name: 1, value: 1}]}
      - {name: 2, other: b}

- description: add map to merging list by pointer
  original: {mergeItemPtr: [{name: 1}]}
  twoWay:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 2}]
  modified: {mergeItemPtr: [{name: 1}, {name: 2}]}
  current: {mergeItemPtr: [{name: 1, other: a}, {name: 3}]}
  threeWay:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 2}]
  result: {mergeItemPtr: [{name: 1, other: a}, {name: 2}, {name: 3}]}

- description: add map to merging list by pointer with conflict
  original: {mergeItemPtr: [{name: 1}]}
  twoWay:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 2}]
  modified: {mergeItemPtr: [{name: 1}, {name: 2}]}
  current: {mergeItemPtr: [{name: 3}]}
  threeWay:
    $setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
    mergeItemPtr: [{name: 1}, {name: 2}]
  result: {mergeItemPtr: [{name: 1}, {name: 2}, {name: 3}]}

- description: merge lists of scalars
  original: {mergingIntList: [1, 2]}
  twoWay: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3]}
  modified: {mergingIntList: [1, 2, 3]}
  current: {mergingIntList: [1, 2, 4]}
  threeWay: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 3, 4]}

- description: add duplicate field to map in merging int list
  original: {mergingIntList: [1, 2]}
  twoWay: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3]}
  modified: {mergingIntList: [1, 2, 3]}
  current: {mergingIntList: [1, 2, 3]}
  threeWay: {}
  result: {mergingIntList: [1, 2, 3]}

- description: add an item in a list of primitives and preserve order
  original: {mergingIntList: [1, 2]}
  twoWay: {$setElementOrder/mergingIntList: [3, 1, 2], mergingIntList: [3]}
  modified: {mergingIntList: [3, 1, 2]}
  current: {mergingIntList: [1, 4, 2]}
  threeWay: {$setElementOrder/mergingIntList: [3, 1, 2], mergingIntList: [3]}
  result: {mergingIntList: [3, 1, 4, 2]}

- description: delete an item in a list and preserve order
  original: {mergingList: [{name: 1}, {name: 3, value: 3}, {name: 2, value: 2}]}
  twoWay:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}]
    mergingList: [{name: 3, $patch: delete}]
  modified: {mergingList: [{name: 2, value: 2}, {name: 1}]}
  current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  threeWay:
    $setElementOrder/mergingList: [{name: 2}, {name: 1}]
    mergingList: [{name: 3, $patch: delete}]
  result: {mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]}

- description: add and delete an item in a list and preserve order
  original: {mergingList: [{name: 1}, {name: 3, value: 3}, {name: 2, value: 2}]}
  twoWay:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]
    mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]
  modified: {mergingList: [{name: 4, value: 4}, {name: 2, value: 2}, {name: 1}]}
  current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  threeWay:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]
    mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]
  result:
    mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]

- description: set elements order in a list with server-only items 3
  original: {mergingList: [{name: 1}, {name: 2, value: 2}, {name: 3, value: 3}, {name: 4, value: 4}]}
  twoWay: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]}
  modified: {mergingList: [{name: 2, value: 2}, {name: 1}, {name: 4, value: 4}, {name: 3, value: 3}]}
  current:
    mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 7}, {name: 9}, {name: 8},
                  {name: 3, value: 3}, {name: 4, value: 4}]
  threeWay: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]}
  result:
    mergingList: [{name: 2, value: 2}, {name: 1, other: a}, {name: 7}, {name: 9}, {name: 8},
                  {name: 4, value: 4}, {name: 3, value: 3}]

- description: set elements order in a int list with server-only items 2
  original: {mergingIntList: [1, 2, 3, 4]}
  twoWay: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  modified: {mergingIntList: [2, 1, 4, 3]}
  current: {mergingIntList: [1, 2, 9, 3, 4]}
  threeWay: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  result: {mergingIntList: [2, 1, 9, 4, 3]}

- description: behavior of set element order for a merging list with duplicate
  original: {mergingList: [{name: 1}, {name: 2, value: dup1}, {name: 3}, {name: 2, value: dup2}, {name: 4}]}
  current: {mergingList: [{name: 1}, {name: 2, value: dup1}, {name: 3}, {name: 2, value: dup2}, {name: 4}]}
  modified: {mergingList: [{name: 2, value: dup1}, {name: 1}, {name: 4}, {name: 3}, {name: 2, value: dup2}]}
  twoWay: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]}
  twoWayResult: {mergingList: [{name: 2, value: dup1}, {name: 2, value: dup2}, {name: 1}, {name: 4}, {name: 3}]}
  threeWay: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]}
  result: {mergingList: [{name: 2, value: dup1}, {name: 2, value: dup2}, {name: 1}, {name: 4}, {name: 3}]}

- description: retainKeys map should clear defaulted field
  original: {}
  current: {retainKeysMap: {value: foo}}
  modified: {retainKeysMap: {other: bar}}
  twoWay: {retainKeysMap: {other: bar}}
  threeWay: {retainKeysMap: {$retainKeys: [other], other: bar}}
  result: {retainKeysMap: {other: bar}}

- description: retainKeys map adds a field and clear a field
  original: {retainKeysMap: {name: foo}}
  current: {retainKeysMap: {name: foo, other: a}}
  modified: {retainKeysMap: {name: foo, value: bar}}
  twoWay: {retainKeysMap: {$retainKeys: [name, value], value: bar}}
  threeWay: {retainKeysMap: {$retainKeys: [name, value], value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}

- description: retainKeys map deletes a field
  original: {retainKeysMap: {name: foo, value: bar}}
  current: {retainKeysMap: {name: foo, value: bar}}
  modified: {retainKeysMap: {name: foo}}
  twoWay: {retainKeysMap: {$retainKeys: [name], value: null}}
  threeWay: {retainKeysMap: {$retainKeys: [name], value: null}}
  result: {retainKeysMap: {name: foo}}
""")


@pytest.mark.parametrize("case", CASES, ids=[c["description"] for c in CASES])
def test_two_way(case):
    assert create_two_way_merge_patch(case["original"], case["modified"], MERGE_ITEM) == case["twoWay"]
    expected = case.get("twoWayResult", case["modified"])
    assert strategic_merge_patch(case["original"], case["twoWay"], MERGE_ITEM) == expected


@pytest.mark.parametrize("case", CASES, ids=[c["description"] for c in CASES])
def test_three_way(case):
    patch = create_three_way_merge_patch(case["original"], case["modified"], case["current"],
                                         MERGE_ITEM)
    assert patch == case["threeWay"]
    assert strategic_merge_patch(case["current"], case["threeWay"], MERGE_ITEM) == case["result"]
