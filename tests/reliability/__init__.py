"""The fault suite: crashes, ambiguous commits, fencing, races, soak (marked ``reliability``)."""
