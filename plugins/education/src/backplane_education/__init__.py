"""Backplane education plugin: courses with immutable published versions, enrolment (open, by
code, by an admin, bulk CSV, cohorts) under seat limits, progress per lesson and course (video
heartbeats included), and the data of the learner, instructor and admin dashboards."""

__version__ = "0.1.0"
