"""Loihi 2 system descriptions (YAML), shipped as package data.

oheo_gulch (1 chip), kapoho_point (8 chips), hala_point (1,152 chips) and
simulator (Lava's CPU simulator). Every value is marked published (with its
source) or estimate (with its reasoning); `spike2loihi.hardware.profiles` checks them
on load, and the resource planner and the activity report read them
(`spike2loihi profile MODEL.s2l --hw NAME|FILE`).
"""
